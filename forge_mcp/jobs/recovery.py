"""Recovery, once, when this process starts supervising a workspace: every job left RUNNING
either still has its worker (adopt it and read on) or does not (settle it from its event
file, or as lost with reason server_restart). Nothing stays RUNNING without a worker."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.events import EventTail
from forge_mcp.jobs.executor import Executor, WorkerHandle
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.states import JobState
from forge_mcp.jobs.supervision import Supervisor

log = logging.getLogger("forge_mcp.jobs")


class Recovery:
    def __init__(
        self, repository: JobRepository, executor: Executor, supervisor: Supervisor, runs_dir: Path, state: EngineState
    ) -> None:
        self.repo = repository
        self.executor = executor
        self.supervisor = supervisor
        self.runs_dir = runs_dir
        self.state = state

    async def reconcile(self) -> None:
        async with self.state.lock:
            for job in await self.repo.list([JobState.RUNNING], limit=100_000):
                await self._reconcile(job)

    async def _reconcile(self, job: Job) -> None:
        handle = _recorded_handle(job)
        sup = Supervision(
            handle=handle or WorkerHandle(job_id=job.id, pid=0, started_at=0.0, host=""),
            tail=EventTail(self.runs_dir / job.id / C.RUN_EVENTS),
            last_beat=time.time(),
        )
        if handle is not None and self.executor.owns(handle) and self.executor.is_alive(handle):
            log.info("job %s: adopting its running worker (pid %d)", job.id, handle.pid)
            self.state.running[job.id] = sup
            await self.supervisor.read_events(job.id, sup)
            return
        await self.supervisor.read_events(job.id, sup)
        await self.supervisor.finish(job.id, sup, lost_reason=C.REASON_SERVER_RESTART)


def _recorded_handle(job: Job) -> WorkerHandle | None:
    """The worker the job's row names, if a launch got as far as recording one."""
    if not job.pid:
        return None
    return WorkerHandle(job_id=job.id, pid=job.pid, started_at=job.pid_started_at or 0.0, host=job.host or "")
