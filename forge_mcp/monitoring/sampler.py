"""The background sampler: every `interval_s`, one sample of this machine and one of each
probed compute target, written to the store in one round with everything older than the
retention deleted. Started and stopped by the composition root with the app.

SSH targets are sampled over the existing SSH helpers (pinned host key, the target's own
key); a Ray cluster by a child process that joins it and runs the same sampling program on
each alive node (compute/ray_probe.py --sample), recorded as one host: the cluster. Each
runs in a worker thread so the event loop never waits on a network, and each is bounded: a
target that has not answered within its timeout records no row this round, and its
error is kept so system_history can say why. A target whose previous try is still running
(a host that half answers) is skipped rather than piled onto."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from forge_mcp.compute.models import SshConfig, StoredTarget
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.compute.service import LOCAL
from forge_mcp.errors import ForgeError, TargetUnavailable
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.samples import HostSample
from forge_mcp.monitoring.sampling import SAMPLE_PROGRAM, CpuMeter, parse_cluster, parse_remote, sample_local
from forge_mcp.workspace import Workspace

log = logging.getLogger("forge_mcp.monitoring")
TARGET_TIMEOUT_S = 20.0  # the whole of one target's sample: connect, run, read
RAY_TARGET_TIMEOUT_S = 60.0  # a Ray cluster's: join it as a driver, one task per node, leave
COMMAND_TIMEOUT_S = 15.0  # the sampling program there (half a second of it is its CPU window)


@dataclass(frozen=True)
class Unreachable:
    at: float
    error: str


class SystemSampler:
    def __init__(
        self,
        samples: SampleRepository,
        targets: ComputeRepository,
        workspace: Workspace,
        *,
        interval_s: float,
        retention_s: float,
        may_sample: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`may_sample`: whether this process is the one that samples the workspace (the engine
        that supervises it); another server on the same workspace would write every row twice."""
        self._samples = samples
        self._targets = targets
        self._workspace = workspace
        self.interval_s = interval_s
        self.retention_s = retention_s
        self._may_sample = may_sample
        self._clock = clock
        self._meter = CpuMeter()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[str] = set()
        self._unreachable: dict[str, Unreachable] = {}

    def start(self) -> None:
        """Sample now, then every interval_s, until stop()."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="forge-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def unreachable(self, host: str) -> Unreachable | None:
        """Why the host's last try recorded nothing, while it has not answered since."""
        return self._unreachable.get(host)

    async def sample_once(self) -> dict[str, HostSample]:
        """One round: this machine and every probed compute target, written with the old rows pruned.
        Returns what was written, by host (a target that could not be reached is not in it)."""
        targets = [t for t in await self._targets.list() if t.probe is not None]
        targets = [t for t in targets if t.name not in self._in_flight]
        local, *remote = await asyncio.gather(
            asyncio.to_thread(sample_local, self._meter, self._workspace.root, self._clock),
            *(self._sample_target(t) for t in targets),
        )
        taken = {LOCAL: local} | {t.name: sample for t, sample in zip(targets, remote, strict=True) if sample is not None}
        await self._samples.add(taken, prune_before=self._clock() - self.retention_s)
        return taken

    async def _run(self) -> None:
        while True:
            if self._may_sample():
                try:
                    await self.sample_once()
                except Exception:  # one bad round must not end monitoring; the next one tries again
                    log.exception("sampling the hosts failed")
            await asyncio.sleep(self.interval_s)

    async def _sample_target(self, target: StoredTarget) -> HostSample | None:
        name = target.name
        self._in_flight.add(name)
        # A thread cannot be cancelled: the timeout stops the wait, and the target stays in
        # flight (skipped by later rounds) until its thread has really ended.
        if target.ray is not None:
            timeout_s = RAY_TARGET_TIMEOUT_S
            future = asyncio.get_running_loop().run_in_executor(None, self._sample_ray, name, target.ray.address)
        else:
            assert target.ssh is not None
            timeout_s = TARGET_TIMEOUT_S
            future = asyncio.get_running_loop().run_in_executor(None, self._sample_ssh, name, target.ssh)
        future.add_done_callback(lambda done: self._settled(name, done))
        try:
            async with asyncio.timeout(timeout_s):
                sample = await asyncio.shield(future)
        except TimeoutError:
            self._unreachable[name] = Unreachable(self._clock(), f"no answer within {timeout_s:.0f} s")
            return None
        except ForgeError as exc:
            self._unreachable[name] = Unreachable(self._clock(), exc.message)
            return None
        except Exception as exc:  # a connection dropped mid-command (socket, paramiko): this target only
            error = self._workspace.scrub(f"{type(exc).__name__}: {exc}")[:300]
            self._unreachable[name] = Unreachable(self._clock(), error)
            return None
        self._unreachable.pop(name, None)
        return sample

    def _settled(self, name: str, done: asyncio.Future[HostSample]) -> None:
        self._in_flight.discard(name)
        if not done.cancelled():
            done.exception()  # retrieved here: after a timeout nobody else looks at it

    def _sample_ssh(self, name: str, config: SshConfig) -> HostSample:
        """Blocking: connect, run the sampling program on the target's python, parse its line."""
        from forge_mcp.compute.ssh import SshUnavailable, connected, run_command

        key_file = self._key_file(config.key_path)
        with connected(name, config, key_file) as client:
            status, out, err = run_command(client, [config.python, "-", config.remote_dir], stdin=SAMPLE_PROGRAM,
                                           timeout_s=COMMAND_TIMEOUT_S)  # fmt: skip
        if status != 0:
            last = (err.strip().splitlines() or ["no message"])[-1][:300]
            raise SshUnavailable(f"compute target {name!r}: the sampling program exited {status} ({last})")
        try:
            return parse_remote(out, self._clock())
        except (ValueError, ValidationError) as exc:
            raise SshUnavailable(f"compute target {name!r}: the sample did not parse ({str(exc)[:300]})") from exc

    def _sample_ray(self, name: str, address: str) -> HostSample:
        """Blocking: a child process joins the cluster and samples each alive node there."""
        from forge_mcp.compute.ray_child import run_ray_program

        stdout = run_ray_program(name, address, ["--sample", address, str(self._workspace.root)], RAY_TARGET_TIMEOUT_S)
        try:
            return parse_cluster(stdout, self._clock())
        except (ValueError, KeyError, ValidationError) as exc:
            raise TargetUnavailable(f"compute target {name!r}: the cluster's sample did not parse ({str(exc)[:300]})") from exc

    def _key_file(self, key_path: str) -> Path:
        return self._workspace.resolve(key_path, field="key_path")

