"""Recovery, once, when this process starts supervising a workspace: every job left RUNNING
is looked up through the executor recorded on it. Its worker still lives: adopt it and
read on. It does not: settle the job from the events it left, or as lost with reason
server_restart. Its executor is no longer configured: FAILED, naming it. Nothing stays
RUNNING without a worker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.executors.base import Executor, WorkerHandle, not_configured
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.settlement import Settlement
from forge_mcp.jobs.states import JobState
from forge_mcp.jobs.supervision import Supervisor

log = logging.getLogger("forge_mcp.jobs")


class Recovery:
    def __init__(
        self,
        repository: JobRepository,
        executors: Mapping[str, Executor],
        supervisor: Supervisor,
        settlement: Settlement,
        runs_dir: Path,
        state: EngineState,
    ) -> None:
        self.repo = repository
        self.executors = executors
        self.supervisor = supervisor
        self.settlement = settlement
        self.runs_dir = runs_dir
        self.state = state

    async def reconcile(self) -> None:
        """All jobs at once (a remote executor answers slowly); the first failure is raised once
        every job had its turn, and the engine tries again at its next tick."""
        jobs = await self.repo.list([JobState.RUNNING], limit=100_000)
        outcomes = await asyncio.gather(*(self._reconcile(job) for job in jobs), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def _reconcile(self, job: Job) -> None:
        executor = self.executors.get(job.executor)
        if executor is None:
            log.error("job %s: its executor %r is not configured; failing it", job.id, job.executor)
            await self.settlement.fail(job.id, C.REASON_EXECUTOR_UNAVAILABLE, not_configured(job.executor, self.executors)
                                       + "; if its worker still runs there, this server did not stop it")  # fmt: skip
            return
        handle = WorkerHandle.recorded(job, RunDir(self.runs_dir, job.id))
        sup = Supervision(handle=handle, executor=executor, last_beat=time.time())
        poll = await executor.poll(handle)
        await self.supervisor.take_events(job.id, sup, poll.events)
        if poll.alive:
            log.info("job %s: adopting its running worker (pid %d on %s)", job.id, handle.pid, handle.host)
            self.state.running[job.id] = sup
            return
        await self.settlement.finish(job.id, sup, lost_reason=C.REASON_SERVER_RESTART)
