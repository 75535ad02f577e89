"""Settling a job once its worker is gone: SUCCEEDED (outputs collected, then the kind's
publish step), FAILED, CANCELED, or back to QUEUED for another try while attempts remain
(on another machine, when its host was lost and the job allows that).
The executor and the publish step run outside the engine's lock; only the transitions
take it."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from forge_mcp.errors import ForgeError
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.publishing import Publish
from forge_mcp.jobs.repository import JobRepository, dumps
from forge_mcp.jobs.states import JobState

log = logging.getLogger("forge_mcp.jobs")

Elsewhere = Callable[[Job], tuple[str, str | None] | None]  # (executor, host) for a job whose host was lost


class Settlement:
    def __init__(self, repository: JobRepository, bus: JobEventBus, publish: Publish, state: EngineState,
                 elsewhere: Elsewhere) -> None:  # fmt: skip
        """`publish` checks a worker's result and runs its kind's publish step (jobs/publishing.py);
        `elsewhere` says where a job whose host was lost may run again (Submission.elsewhere)."""
        self.repo = repository
        self.bus = bus
        self.publish = publish
        self.state = state
        self.elsewhere = elsewhere

    async def finish(self, job_id: str, sup: Supervision, *, lost_reason: str) -> None:
        """The worker is gone: settle the job from its outcome event, or as lost."""
        self.state.running.pop(job_id, None)
        try:
            await sup.executor.kill(sup.handle)  # children that outlived the worker
        except Exception:  # the job is settled all the same: its worker is gone
            log.exception("job %s: killing what is left of its worker failed", job_id)
        job = await self.repo.get(job_id)
        outcome = sup.outcome or {}
        kind = outcome.get("type")
        if kind != "result":
            await self._bring_log_home(job_id, sup)
        if kind == "result":
            settled = await self._succeed(job, sup, outcome.get("result") or {})
        elif kind == "canceled" or job.cancel_requested:
            settled = await self._transition(job_id, JobState.CANCELED, reason=C.REASON_CANCELED)
        elif kind == "error":
            reason = outcome.get("reason") or C.REASON_WORKER_ERROR
            settled = await self._retry_elsewhere(job, reason) or await self._transition(
                job_id, JobState.FAILED, reason=reason, error=outcome.get("message")
            )
        else:
            settled = await self._retry_elsewhere(job, lost_reason) or await self._lost(job, lost_reason)
        self.bus.publish(JobUpdate(settled, "state"))
        self.state.wake.set()

    async def fail(self, job_id: str, reason: str, error: str) -> None:
        """FAILED before or without a worker (launch refused, executor gone)."""
        failed = await self._transition(job_id, JobState.FAILED, reason=reason, error=error)
        self.bus.publish(JobUpdate(failed, "state"))

    async def _succeed(self, job: Job, sup: Supervision, result: dict[str, Any]) -> Job:
        """Bring the run's outputs home, check the result against its kind's model and publish
        what the job produced (when its kind does), then SUCCEEDED; outputs that cannot be
        collected, a result that does not match, or a refused publication fail the job instead."""
        try:
            await sup.executor.collect(sup.handle, [sup.handle.run.path])
        except Exception as exc:
            ref = secrets.token_hex(4)
            log.error("job %s: collecting its outputs from %s failed (ref %s): %s", job.id, sup.handle.host, ref, exc)
            return await self._transition(job.id, JobState.FAILED, reason=C.REASON_COLLECT_FAILED,
                                          error=f"the job finished but its outputs could not be brought back from "
                                          f"{sup.handle.host} (ref {ref}); job_resume runs it again")  # fmt: skip
        try:
            result = await self.publish(job, result)
        except ForgeError as exc:
            return await self._transition(job.id, JobState.FAILED, reason="publish_failed", error=exc.message)
        except Exception:
            log.exception("publishing the output of job %s failed", job.id)
            return await self._transition(
                job.id, JobState.FAILED, reason="publish_failed", error="publishing the output failed; see the server log"
            )
        return await self._transition(job.id, JobState.SUCCEEDED, reason="completed", result=dumps(result))

    async def _bring_log_home(self, job_id: str, sup: Supervision) -> None:
        """A job that did not succeed keeps its outputs where they are (a resume there continues
        from them), but its log comes home, for job_logs once the worker's host is out of reach."""
        try:
            await sup.executor.collect(sup.handle, [sup.handle.run.log])
        except Exception as exc:  # best effort: job_logs asks the executor while the log is not here
            log.warning("job %s: bringing its log home from %s failed: %s", job_id, sup.handle.host, exc)

    async def _retry_elsewhere(self, job: Job, reason: str) -> Job | None:
        """Its host was lost and the job allows another machine: QUEUED there while attempts
        remain and one fits. The new attempt starts from its checkpoints where that machine
        can read them (a Ray cluster's shared storage), else from the beginning."""
        if not (job.retry_elsewhere and reason.startswith(C.REASON_HOST_UNREACHABLE) and job.attempt < job.max_attempts):
            return None
        place = self.elsewhere(job)
        if place is None:
            return None
        executor, host = place
        where = host or "this machine"
        log.warning("job %s lost its host %s (%s); retrying on %s, attempt %d of %d", job.id, job.host, reason, where,
                    job.attempt + 1, job.max_attempts)  # fmt: skip
        return await self._transition(job.id, JobState.QUEUED, reason=f"retry on {where}: {job.host} was lost",
                                      pid=None, executor=executor, host=host)  # fmt: skip

    async def _lost(self, job: Job, reason: str) -> Job:
        """No outcome and no process: retry while attempts remain, else FAILED with the reason."""
        if job.attempt < job.max_attempts:
            log.warning("job %s lost its worker (%s); retrying, attempt %d of %d", job.id, reason, job.attempt + 1, job.max_attempts)
            return await self._transition(job.id, JobState.QUEUED, reason=f"retry after {reason}", pid=None)
        return await self._transition(
            job.id,
            JobState.FAILED,
            reason=reason.split(":")[0],
            error=f"the worker was lost ({reason}) and no attempts remain; job_resume starts it again",
        )

    async def _transition(self, job_id: str, to: JobState, **fields: Any) -> Job:
        async with self.state.lock:
            return await self.repo.transition(job_id, to, **fields)
