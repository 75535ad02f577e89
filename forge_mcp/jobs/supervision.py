"""Supervision, the engine loop's body: admit what fits, launch it, watch each worker's
events and process, and settle the job once its worker is gone — SUCCEEDED (after the
kind's publish step), FAILED, CANCELED, or back to QUEUED for another try.

A worker's outcome is taken from its event file once its process is gone, so a job is
never SUCCEEDED while its worker still runs, and never RUNNING without one for longer
than a tick (or the heartbeat lease, for a hung worker)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from forge_mcp.errors import Conflict, ForgeError
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import admit
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.events import TERMINAL_EVENTS, EventTail, JobEventBus, JobUpdate
from forge_mcp.jobs.executor import Executor, WorkerHandle
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository, dumps
from forge_mcp.jobs.states import JobState

log = logging.getLogger("forge_mcp.jobs")


class Supervisor:
    def __init__(
        self,
        repository: JobRepository,
        executor: Executor,
        bus: JobEventBus,
        kinds: Mapping[str, JobKind],
        runs_dir: Path,
        limits: EngineLimits,
        scrub: Callable[[str], str],
        state: EngineState,
    ) -> None:
        self.repo = repository
        self.executor = executor
        self.bus = bus
        self.kinds = kinds
        self.runs_dir = runs_dir
        self.limits = limits
        self.scrub = scrub
        self.state = state
        self.services: Any = None  # handed to publish hooks; set by the composition root

    async def tick(self) -> None:
        async with self.state.lock:
            if self.state.running:
                self.request_stops(await self.repo.cancel_requested_ids())
            for job_id, supervision in list(self.state.running.items()):
                await self._supervise(job_id, supervision)
            await self._admit()

    def request_stops(self, job_ids: set[str] | None = None) -> None:
        """SIGTERM now, SIGKILL once the grace period is over (the next tick after it)."""
        for job_id, supervision in self.state.running.items():
            if supervision.kill_at is None and (job_ids is None or job_id in job_ids):
                supervision.kill_at = time.time() + self.limits.cancel_grace_s
                self.executor.request_stop(supervision.handle)

    # admission and launch --------------------------------------------------------------

    async def _admit(self) -> None:
        queued = await self.repo.queued_in_order()
        if not queued:
            return
        running = await self.repo.list([JobState.RUNNING], limit=10_000)
        services = frozenset(name for name, kind in self.kinds.items() if kind.service)
        for job in admit(queued, running, self.limits.capacity, services):
            try:
                await self._launch(job)
            except Conflict:  # canceled by another process between the read and the launch
                continue

    async def _launch(self, job: Job) -> None:
        run_dir = self.runs_dir / job.id
        if not run_dir.resolve().is_relative_to(self.runs_dir.parent.resolve()):
            # A link planted at runs/ or runs/<job> must not receive the job's files.
            await self._fail(job.id, C.REASON_LAUNCH_FAILED, f"runs/{job.id} leads outside the workspace through a "
                             "symbolic link; remove the link, then start the job again")  # fmt: skip
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        attempt = job.attempt + 1
        events = run_dir / C.RUN_EVENTS
        if events.exists():  # a previous attempt's events stay readable beside the new ones
            events.rename(run_dir / f"events.attempt{job.attempt}.jsonl")
        spec = {"kind": job.kind, "arguments": job.arguments, "attempt": attempt, "heartbeat_s": self.limits.heartbeat_s,
                "parent_id": job.parent_id}  # fmt: skip
        _write_atomic(run_dir / C.RUN_SPEC, json.dumps(spec, indent=2))
        # RUNNING is written before the process exists: a crash in between leaves a RUNNING
        # job without a process, which recovery handles; the reverse would leave a worker
        # that no row accounts for.
        now = time.time()
        running = await self.repo.transition(
            job.id,
            JobState.RUNNING,
            reason="retry" if attempt > 1 else "admitted",
            attempt=attempt,
            started_at=job.started_at or now,
            heartbeat_at=now,
            host=None,
            pid=None,
        )
        self.bus.publish(JobUpdate(running, "state"))
        try:
            handle = self.executor.launch(job.id, run_dir)
        except OSError as exc:
            # The OS error names host paths: the full detail goes to the server log under a ref,
            # the stored error (what job_status shows) gets them workspace-relative.
            ref = secrets.token_hex(4)
            log.error("job %s: could not start the worker (ref %s): %s", job.id, ref, exc)
            await self._fail(job.id, C.REASON_LAUNCH_FAILED,
                             f"could not start the worker (ref {ref}): {self.scrub(str(exc))}; the server log has the detail")  # fmt: skip
            return
        await self.repo.update(job.id, pid=handle.pid, host=handle.host, pid_started_at=handle.started_at)
        self.state.running[job.id] = Supervision(handle=handle, tail=EventTail(events), last_beat=now)

    async def _fail(self, job_id: str, reason: str, error: str) -> None:
        failed = await self.repo.transition(job_id, JobState.FAILED, reason=reason, error=error)
        self.bus.publish(JobUpdate(failed, "state"))

    # watching a worker -----------------------------------------------------------------

    async def _supervise(self, job_id: str, sup: Supervision) -> None:
        await self.read_events(job_id, sup)
        now = time.time()
        if not self.executor.is_alive(sup.handle):
            await self.read_events(job_id, sup)  # whatever it wrote just before exiting
            await self.finish(job_id, sup, lost_reason=self._exit_reason(sup.handle))
        elif now - sup.last_beat > self.limits.lease_s:
            log.warning("job %s: no heartbeat for %.0fs; killing its worker", job_id, now - sup.last_beat)
            await asyncio.to_thread(self.executor.kill_now, sup.handle)
            await self.finish(job_id, sup, lost_reason=C.REASON_HEARTBEAT_LOST)
        elif sup.kill_at is not None and now > sup.kill_at:
            await asyncio.to_thread(self.executor.kill_now, sup.handle)

    def _exit_reason(self, handle: WorkerHandle) -> str:
        code = self.executor.exit_code(handle)
        if code is not None and code < 0:
            return f"{C.REASON_WORKER_LOST}: killed by signal {-code}"
        if code is not None:
            return f"{C.REASON_WORKER_LOST}: exited with code {code} without reporting an outcome"
        return C.REASON_WORKER_LOST

    async def read_events(self, job_id: str, sup: Supervision) -> None:
        """Take in what the worker reported since the last read: the heartbeat, progress and
        metrics go to the store (and the bus), the outcome waits for the worker to be gone."""
        progress: dict[str, Any] | None = None
        for event in sup.tail.read():
            kind = event["type"]
            if kind in ("heartbeat", "started"):
                sup.last_beat = max(sup.last_beat, float(event.get("at", time.time())))
            elif kind == "progress":
                progress = event
            elif kind == "metric":
                sup.metric_points.append((str(event["name"]), float(event["step"]), float(event["value"]), event["at"]))
            elif kind in TERMINAL_EVENTS:
                sup.outcome = event
        if progress is not None:
            await self.repo.update(
                job_id,
                progress_done=progress.get("done"),
                progress_total=progress.get("total"),
                progress_message=(progress.get("message") or None),
            )
            self.bus.publish(JobUpdate(await self.repo.get(job_id), "progress"))
        if sup.metric_points:
            await self.repo.add_metrics(job_id, sup.metric_points)
            sup.metric_points = []
            self.bus.publish(JobUpdate(await self.repo.get(job_id), "metrics"))
        if sup.last_beat - sup.heartbeat_written >= 5.0:
            await self.repo.update(job_id, heartbeat_at=sup.last_beat)
            sup.heartbeat_written = sup.last_beat

    # settling a job --------------------------------------------------------------------

    async def finish(self, job_id: str, sup: Supervision, *, lost_reason: str) -> None:
        """The worker is gone: settle the job from its outcome event, or as lost."""
        self.state.running.pop(job_id, None)
        # Children that outlived the worker; scanning processes and reaping blocks, so off the loop.
        await asyncio.to_thread(self.executor.kill_now, sup.handle)
        job = await self.repo.get(job_id)
        outcome = sup.outcome or {}
        kind = outcome.get("type")
        if kind == "result":
            settled = await self._succeed(job, outcome.get("result") or {})
        elif kind == "canceled" or job.cancel_requested:
            settled = await self.repo.transition(job_id, JobState.CANCELED, reason=C.REASON_CANCELED)
        elif kind == "error":
            settled = await self.repo.transition(
                job_id, JobState.FAILED, reason=outcome.get("reason") or C.REASON_WORKER_ERROR, error=outcome.get("message")
            )
        else:
            settled = await self._lost(job, lost_reason)
        self.bus.publish(JobUpdate(settled, "state"))
        self.state.wake.set()

    async def _succeed(self, job: Job, result: dict[str, Any]) -> Job:
        """Publish what the job produced (when its kind does), then SUCCEEDED; a refused
        publication fails the job with the reason instead."""
        job_kind = self.kinds.get(job.kind)
        if job_kind is not None and job_kind.publish is not None:
            try:
                result = await job_kind.publish(self.services, job, result)
            except ForgeError as exc:
                return await self.repo.transition(job.id, JobState.FAILED, reason="publish_failed", error=exc.message)
            except Exception:
                log.exception("publishing the output of job %s failed", job.id)
                return await self.repo.transition(
                    job.id, JobState.FAILED, reason="publish_failed", error="publishing the output failed; see the server log"
                )
        return await self.repo.transition(job.id, JobState.SUCCEEDED, reason="completed", result=dumps(result))

    async def _lost(self, job: Job, reason: str) -> Job:
        """No outcome and no process: retry while attempts remain, else FAILED with the reason."""
        if job.attempt < job.max_attempts:
            log.warning("job %s lost its worker (%s); retrying, attempt %d of %d", job.id, reason, job.attempt + 1, job.max_attempts)
            return await self.repo.transition(job.id, JobState.QUEUED, reason=f"retry after {reason}", pid=None)
        return await self.repo.transition(
            job.id,
            JobState.FAILED,
            reason=reason.split(":")[0],
            error=f"the worker was lost ({reason}) and no attempts remain; job_resume starts it again",
        )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
