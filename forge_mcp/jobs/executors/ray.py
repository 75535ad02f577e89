"""The Ray executor: a job on a Ray compute target becomes one Ray task that asks for the
job's CPU, GPUs and memory, so Ray places it on a node that has them.

Each job has a driver on this machine (`python -m forge_mcp.compute.ray_driver`, started as
the local executor starts a worker: own session, output to the run's worker.log), which
submits the task and waits on it; the engine watches, stops and re-attaches the driver by
pid and start time like any local worker, and reads the events the worker writes into the
run folder. Ray is imported only by the driver and the probe, never by the server.

The one assumption a multi-node cluster adds: the workspace is on storage every node sees
at the same path (the worker reads its inputs and writes its run folder there). On a
one-machine cluster it is."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from forge_mcp.compute.models import StoredTarget
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.executors.base import WorkerHandle
from forge_mcp.jobs.executors.local import LocalExecutor
from forge_mcp.jobs.run_dir import RunDir


class RayExecutor(LocalExecutor):
    name = "ray"

    def __init__(self, home: Path, import_roots: tuple[Path, ...] = ()) -> None:
        super().__init__(home, Capacity(gpu_slots=0, cpu_slots=0, memory_gb=0.0), import_roots)
        self._targets: dict[str, StoredTarget] = {}

    def set_targets(self, targets: Sequence[StoredTarget]) -> None:
        """The Ray targets now (compute_add/remove call this)."""
        self._targets = {t.name: t for t in targets if t.ray is not None}

    def hosts(self) -> Mapping[str, Capacity]:
        """Each cluster takes as many jobs at once as its last probe found GPUs and CPUs; Ray
        queues what does not fit on a node yet."""
        out = {}
        for name, target in self._targets.items():
            probe = target.probe or {}
            out[name] = Capacity(gpu_slots=int(probe.get("gpu_count") or 0), cpu_slots=max(1, int(probe.get("cpus") or 1)),
                                 memory_gb=float(probe.get("ram_gb") or 0))  # fmt: skip
        return out

    def command(self, run: RunDir, host: str) -> list[str]:
        target = self._targets.get(host)
        if target is None or target.ray is None:
            raise OSError(f"compute target {host!r} is not a Ray cluster this server knows")
        return [sys.executable, "-m", "forge_mcp.compute.ray_driver", str(run.path), target.ray.address]

    def runs_here(self, handle: WorkerHandle) -> bool:
        """Drivers run on this machine, whichever cluster their task went to."""
        return handle.host in self._targets
