"""Admission and launch: place what fits on a host of its executor (admission.py), write the
run's spec, mark the job RUNNING, and have the executor start its worker. The executor is
called outside the engine's lock, and the launches of one tick run concurrently."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from forge_mcp.errors import Conflict
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import Placement, place
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.executors.base import Executor, not_configured
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.settlement import Settlement
from forge_mcp.jobs.spec import JobSpec, repeat_chain
from forge_mcp.jobs.states import JobState

log = logging.getLogger("forge_mcp.jobs")


class Launcher:
    def __init__(
        self,
        repository: JobRepository,
        executors: Mapping[str, Executor],
        bus: JobEventBus,
        kinds: Mapping[str, JobKind],
        runs_dir: Path,
        limits: EngineLimits,
        scrub: Callable[[str], str],
        settlement: Settlement,
        state: EngineState,
    ) -> None:
        self.repo = repository
        self.executors = executors
        self.bus = bus
        self.kinds = kinds
        self.runs_dir = runs_dir
        self.limits = limits
        self.scrub = scrub
        self.settlement = settlement
        self.state = state

    async def admit(self) -> None:
        queued = await self.repo.queued_in_order()
        if not queued:
            return
        for job in queued:
            if job.executor not in self.executors:  # it would wait forever
                try:
                    await self.settlement.fail(job.id, C.REASON_EXECUTOR_UNAVAILABLE,
                                               not_configured(job.executor, self.executors))  # fmt: skip
                except Conflict:  # canceled meanwhile
                    pass
        running = await self.repo.list([JobState.RUNNING], limit=10_000)
        hosts = {name: executor.hosts() for name, executor in self.executors.items()}
        services = frozenset(name for name, kind in self.kinds.items() if kind.service)
        await asyncio.gather(*(self._launch_placed(placement) for placement in place(queued, running, hosts, services)))

    async def _launch_placed(self, placement: Placement) -> None:
        try:
            await self._launch(placement.job, self.executors[placement.job.executor], placement.host)
        except Conflict:  # canceled by another process between the read and the launch
            pass

    async def _launch(self, job: Job, executor: Executor, host: str | None) -> None:
        run = RunDir(self.runs_dir, job.id)
        if not run.path.resolve().is_relative_to(self.runs_dir.parent.resolve()):
            # A link planted at runs/ or runs/<job> must not receive the job's files.
            await self.settlement.fail(job.id, C.REASON_LAUNCH_FAILED, f"{run.shown()} leads outside the workspace "
                                       "through a symbolic link; remove the link, then start the job again")  # fmt: skip
            return
        run.path.mkdir(parents=True, exist_ok=True)
        attempt = job.attempt + 1
        run.keep_previous_events(job.attempt)
        # Everything the worker needs, so it runs from its run folder alone (jobs/spec.py); the
        # executor says where the worker's machine sees the workspace.
        JobSpec(job_id=job.id, kind=job.kind, arguments=job.arguments, attempt=attempt, heartbeat_s=self.limits.heartbeat_s,
                repeats=await repeat_chain(job.parent_id, self.repo.get),
                workspace=executor.worker_workspace, gpus=job.resources.gpus,
                memory_gb=job.resources.memory_gb, processes=job.resources.processes,
                service=self.kinds[job.kind].service).write(run)  # fmt: skip
        # RUNNING is written before the process exists: a crash in between leaves a RUNNING
        # job without a process, which recovery handles; the reverse would leave a worker
        # that no row accounts for. The executor and host are recorded now, so a restarted
        # server knows where to look for the worker.
        now = time.time()
        async with self.state.lock:
            running = await self.repo.transition(
                job.id,
                JobState.RUNNING,
                reason="retry" if attempt > 1 else "admitted",
                attempt=attempt,
                started_at=job.started_at or now,
                heartbeat_at=now,
                executor=executor.name,
                host=host,
                pid=None,
            )
        self.bus.publish(JobUpdate(running, "state"))
        try:
            handle = await executor.launch(job.id, run, host)
        except Exception as exc:  # OSError here; a remote executor's own errors too
            # The error may name host paths: the full detail goes to the server log under a ref,
            # the stored error (what job_status shows) gets them workspace-relative.
            ref = secrets.token_hex(4)
            log.error("job %s: could not start the worker (ref %s): %s", job.id, ref, exc)
            await self.settlement.fail(job.id, C.REASON_LAUNCH_FAILED,
                                       f"could not start the worker (ref {ref}): {self.scrub(str(exc))}; "
                                       "the server log has the detail")  # fmt: skip
            return
        async with self.state.lock:
            await self.repo.update(job.id, pid=handle.pid, host=handle.host, pid_started_at=handle.started_at)
            self.state.running[job.id] = Supervision(handle=handle, executor=executor, last_beat=now)
