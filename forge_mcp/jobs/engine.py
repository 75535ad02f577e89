"""The job engine: one façade over its parts — submission (submission.py), the supervising
loop's tick (supervision.py, with launching.py and settlement.py), recovery at start-up
(recovery.py) and waiting (waiting.py) — sharing one EngineState. Workers run through
executors (executors/), picked by the name recorded on each job. This module holds the
lifecycle (who supervises the workspace, and the loop), who may see and act on which job,
cancellation, and the way to a job's log.

State lives in the database; the engine keeps only what it supervises right now. Every
transition is written before it is published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_mcp.errors import Conflict
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.engine_state import EngineState
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.executors.base import Executor, LogChunk, WorkerHandle, read_log
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.launching import Launcher
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.models import Job, JobHandle
from forge_mcp.jobs.publishing import Publish
from forge_mcp.jobs.recovery import Recovery
from forge_mcp.jobs.repository import JobRepository, no_such_job
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.settlement import Settlement
from forge_mcp.jobs.states import JobState
from forge_mcp.jobs.submission import Submission
from forge_mcp.jobs.supervision import Supervisor
from forge_mcp.jobs.waiting import ProgressCallback, Waiter
from forge_mcp.security.principal import Principal

if TYPE_CHECKING:
    from forge_mcp.jobs.executors.warm_pool import WarmPool

__all__ = ["EngineLimits", "JobEngine", "ProgressCallback"]

log = logging.getLogger("forge_mcp.jobs")


class JobEngine:
    def __init__(
        self,
        repository: JobRepository,
        executors: Mapping[str, Executor],
        bus: JobEventBus,
        kinds: Mapping[str, JobKind],
        runs_dir: Path,
        limits: EngineLimits,
        lock: EngineLock,
        scrub: Callable[[str], str],
        publish: Publish,
        *,
        default_executor: str = "local",
        warm: WarmPool | None = None,
    ) -> None:
        """`executors` by name (Executor.name): a job runs on the one recorded on it, at submission
        `default_executor` unless the caller names another. `scrub` makes a message safe for
        clients (Workspace.scrub: workspace paths relative, other host paths cut short); the
        engine's own errors pass through it before they are stored. `publish` checks a worker's
        result and runs its kind's publish step (jobs/publishing.py). `warm`: the local executor's
        warm workers, kept while this engine supervises the workspace (only then does it launch)."""
        self.repo = repository
        self.bus = bus
        self.kinds = dict(kinds)
        self.runs_dir = runs_dir
        self.limits = limits
        self.lock = lock
        self.executors = dict(executors)
        self._state = EngineState()
        self._submission = Submission(repository, bus, self.kinds, runs_dir, limits, self.executors, default_executor,
                                      self._state)  # fmt: skip
        settlement = Settlement(repository, bus, publish, self._state, self._submission.elsewhere)
        launcher = Launcher(repository, self.executors, bus, self.kinds, runs_dir, limits, scrub, settlement, self._state)
        self._supervisor = Supervisor(repository, bus, limits, launcher, settlement, self._state)
        self._recovery = Recovery(repository, self.executors, self._supervisor, settlement, runs_dir, self._state)
        self._waiter = Waiter(repository, bus)
        self.warm = warm
        self._loop_task: asyncio.Task[None] | None = None
        self._supervising = False  # lock held and recovery done

    # lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Supervise if this process gets the workspace's engine lock; otherwise keep trying
        every tick (taking over when the holder exits) and serve everything else meanwhile."""
        await self._take_over_if_free()
        self._loop_task = asyncio.create_task(self._loop(), name="forge-job-engine")

    async def stop(self) -> None:
        """Stops supervising. Workers keep running; the next engine adopts them. Idle warm workers
        are stopped: no job is theirs yet."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
            self._loop_task = None
        if self.warm is not None:
            await asyncio.to_thread(self.warm.close)
        self._supervisor.close()
        self._supervising = False
        self.lock.release()

    @property
    def active(self) -> bool:
        """Whether this engine supervises the workspace's jobs (and has recovered them)."""
        return self._supervising

    async def _take_over_if_free(self) -> None:
        if self._supervising or not (self.lock.held or self.lock.try_acquire()):
            return
        log.info("supervising jobs in this workspace")
        await self.reconcile()  # if this fails, the next tick tries again, still holding the lock
        self._supervising = True
        if self.warm is not None:
            self.warm.start()  # returns at once: the workers warm in a thread

    async def _loop(self) -> None:
        while True:
            try:
                await self._take_over_if_free()
                if self._supervising:
                    await self.tick()
            except Exception:  # one bad tick must not stop supervision
                log.exception("job engine tick failed")
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                # lands as the wake-up completes, and stop() would then wait for this loop forever.
                async with asyncio.timeout(C.TICK_S):
                    await self._state.wake.wait()
            except TimeoutError:
                pass
            self._state.wake.clear()

    async def tick(self) -> None:
        await self._supervisor.tick()

    def wake(self) -> None:
        """Tick now rather than at the next period: something a tick acts on just happened (an
        orchestration's coroutine ended, and its outcome is waiting to be settled)."""
        self._state.wake.set()

    async def reconcile(self) -> None:
        """At start-up: adopt RUNNING jobs whose worker still lives; settle the others."""
        await self._recovery.reconcile()

    # submission ----------------------------------------------------------------------

    async def submit(
        self,
        kind: str,
        arguments: dict[str, Any],
        principal: str,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        parent_id: str | None = None,
        requested_by: str | None = None,
        executor: str | None = None,
        host: str | None = None,
        retry_elsewhere: bool = False,
    ) -> JobHandle:
        """Queue a job owned by `principal`; `requested_by` is who asked, when that is someone
        else (an admin resuming another's job), so a refusal names whose queue is full.
        `executor` names where it runs (default: its kind's executor, else the engine's default);
        `host`, which of its hosts (a compute target); `retry_elsewhere`: if that host is lost,
        the job may run again on another machine where it fits (Submission.elsewhere)."""
        return await self._submission.submit(kind, arguments, principal, priority=priority,
                                             idempotency_key=idempotency_key, parent_id=parent_id,
                                             requested_by=requested_by, executor=executor, host=host,
                                             retry_elsewhere=retry_elsewhere)  # fmt: skip

    def executor_of(self, compute: str) -> str:
        """The executor that runs jobs on compute target `compute`; InvalidArguments naming the
        known targets when there is none."""
        return self._submission.executor_of(compute)

    async def resume(self, job_id: str, principal: Principal) -> JobHandle:
        """A new job that repeats a FAILED or CANCELED one of `principal`'s (an admin's: anyone's);
        it belongs to the old job's owner, whoever resumes it."""
        return await self._submission.resume(await self.get(job_id, principal), principal)

    # access: who may see and act on which job ------------------------------------------
    # Every tool, resource and A2A call that names a job comes through here. A job belongs
    # to the principal that started it; admin keys and the local operator (stdio, loopback
    # without auth) see and act on every job. Anyone else's job reads exactly like an
    # unknown id, so job ids never leak through a "forbidden".

    async def get(self, job_id: str, principal: Principal) -> Job:
        job = await self.repo.get(job_id)
        if not principal.sees_everything and job.principal != principal.name:
            raise no_such_job(job_id)
        return job

    async def list(
        self, principal: Principal, states: Iterable[JobState] = (), kind: str | None = None, limit: int = 50
    ) -> list[Job]:
        return await self.repo.list(states, kind, limit, owner=_owner_filter(principal))

    async def counts(self, principal: Principal) -> dict[str, int]:
        return await self.repo.counts(owner=_owner_filter(principal))

    async def logs(self, job: Job, since: int | None = None, max_bytes: int = C.LOG_TAIL_MAX_BYTES) -> LogChunk:
        """The job's log (check access with get first): from `since`, at most the last `max_bytes`.
        An ended job's is the copy its settlement brought home, where there is one; a running
        job's comes through its executor. A job whose executor is gone reads as an empty log."""
        run = RunDir(self.runs_dir, job.id)
        if job.terminal and run.log.is_file():
            return await asyncio.to_thread(read_log, run.log, since, max_bytes)
        executor = self.executors.get(job.executor)
        if executor is None:
            return LogChunk(text="", next_offset=0)
        return await executor.logs(WorkerHandle.recorded(job, run), since, max_bytes)

    def supervised(self) -> list[str]:
        """The jobs whose workers this process supervises now."""
        return list(self._state.running)

    # cancellation --------------------------------------------------------------------

    async def cancel(self, job_id: str, principal: Principal | None = None) -> Job:
        """Idempotent in every state. Returns once the job is terminal (bounded by the grace
        period). With `principal`, only a job they may act on; without, the server's own call."""
        if principal is not None:
            await self.get(job_id, principal)
        async with self._state.lock:
            job = await self.repo.get(job_id)
            if job.terminal:
                return job
            if job.state is JobState.QUEUED:
                try:
                    job = await self.repo.transition(job_id, JobState.CANCELED, reason=C.REASON_CANCELED)
                    self.bus.publish(JobUpdate(job, "state"))
                    return job
                except Conflict:  # another process admitted it just now
                    job = await self.repo.get(job_id)
                    if job.terminal:
                        return job
            # The flag is the channel: whichever process supervises the worker acts on it.
            await self.repo.update(job_id, cancel_requested=1)
        await self._supervisor.request_stops({job_id})  # outside the lock: it calls the executor
        return await self.wait(job_id, self.limits.cancel_grace_s + 5.0)

    # waiting -------------------------------------------------------------------------

    async def wait(
        self, job_id: str, timeout_s: float, on_progress: ProgressCallback | None = None, principal: Principal | None = None
    ) -> Job:
        """Until the job is terminal or `timeout_s` passes. With `principal`, only a job they may see."""
        if principal is not None:
            await self.get(job_id, principal)
        return await self._waiter.wait(job_id, timeout_s, on_progress)


def _owner_filter(principal: Principal) -> str | None:
    """Whose jobs `principal` sees: None for every job (admin, local operator), else their own."""
    return None if principal.sees_everything else principal.name
