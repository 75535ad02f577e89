"""The job engine: submit, admit, launch, supervise, finish, cancel, recover.

State lives in the database; the engine keeps only what it supervises right now (the
worker handle and how far it has read that worker's events). Every transition is
written before it is published. A worker's outcome is taken from its event file once
its process is gone, so a job is never SUCCEEDED while its worker still runs, and never
RUNNING without one for longer than a tick (or the heartbeat lease, for a hung worker).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_mcp.errors import Conflict, ForgeError, InvalidArguments, NotFound, PathRefused
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import Capacity, admit
from forge_mcp.jobs.events import TERMINAL_EVENTS, EventTail, JobEventBus, JobUpdate
from forge_mcp.jobs.executor import Executor, WorkerHandle
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.models import Job, JobHandle
from forge_mcp.jobs.repository import JobRepository, dumps, no_such_job
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal

log = logging.getLogger("forge_mcp.jobs")

ProgressCallback = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class EngineLimits:
    capacity: Capacity
    max_queued_per_principal: int = C.MAX_QUEUED_PER_PRINCIPAL
    max_attempts: int = C.MAX_ATTEMPTS
    heartbeat_s: float = C.HEARTBEAT_S
    lease_s: float = C.LEASE_S
    cancel_grace_s: float = C.CANCEL_GRACE_S


@dataclass
class Supervision:
    handle: WorkerHandle
    tail: EventTail
    last_beat: float
    outcome: dict[str, Any] | None = None
    kill_at: float | None = None
    heartbeat_written: float = 0.0
    metric_points: list[tuple[str, float, float, float]] = field(default_factory=list)


class JobEngine:
    def __init__(
        self,
        repository: JobRepository,
        executor: Executor,
        bus: JobEventBus,
        kinds: Mapping[str, JobKind],
        runs_dir: Path,
        limits: EngineLimits,
        lock: EngineLock,
        scrub: Callable[[str], str],
    ) -> None:
        """`scrub` makes a message safe for clients (Workspace.scrub: workspace paths relative,
        other host paths cut short); the engine's own errors pass through it before they are stored."""
        self.repo = repository
        self.executor = executor
        self.bus = bus
        self.kinds = dict(kinds)
        self.runs_dir = runs_dir
        self.limits = limits
        self.lock = lock
        self.scrub = scrub
        self._running: dict[str, Supervision] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._supervising = False  # lock held and recovery done
        self.services: Any = None  # handed to publish hooks; set by the composition root

    # lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Supervise if this process gets the workspace's engine lock; otherwise keep trying
        every tick (taking over when the holder exits) and serve everything else meanwhile."""
        await self._take_over_if_free()
        self._loop_task = asyncio.create_task(self._loop(), name="forge-job-engine")

    async def stop(self) -> None:
        """Stops supervising. Workers keep running; the next engine adopts them."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            try:
                await self._loop_task
            except asyncio.CancelledError:
                pass
            self._loop_task = None
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
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

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
    ) -> JobHandle:
        """Queue a job owned by `principal`; `requested_by` is who asked, when that is someone
        else (an admin resuming another's job), so a refusal names whose queue is full."""
        job_kind = self.kinds.get(kind)
        if job_kind is None:
            raise NotFound(f"job kind {kind!r} is not registered")
        resources = job_kind.resources(arguments)
        if resources.gpus > self.limits.capacity.gpu_slots:
            raise InvalidArguments(
                f"this job needs {resources.gpus} GPU(s) but the server has {self.limits.capacity.gpu_slots} GPU slot(s); "
                "ask for fewer GPUs, or run it on a machine with more (gpu_slots setting)"
            )
        if not self.runs_dir.resolve().is_relative_to(self.runs_dir.parent.resolve()):
            raise PathRefused("the workspace folder runs leads outside the workspace through a symbolic link, and "
                              "forge-mcp writes only inside the workspace; remove the link, then try again")  # fmt: skip
        fingerprint = hashlib.sha256(dumps({"kind": kind, "arguments": arguments, "priority": priority}).encode())
        now = time.time()
        job_id = f"{C.JOB_ID_PREFIX}{int(now * 1000):x}{secrets.token_hex(4)}"
        async with self.repo.transaction() as tx:  # the key check and the insert are one step
            if idempotency_key is not None:
                existing = await self.repo.find_by_key(tx, principal, idempotency_key)
                if existing is not None:
                    row = await tx.fetchone("SELECT arguments_hash FROM jobs WHERE id = ?", (existing.id,))
                    if row["arguments_hash"] != fingerprint.hexdigest():
                        raise Conflict(
                            f"idempotency_key {idempotency_key!r} was already used for job {existing.id} with other "
                            "arguments; reuse it only to repeat the same request, or pick a new key"
                        )
                    return JobHandle(job_id=existing.id, kind=existing.kind, state=existing.state, deduplicated=True)
            queued = await self.repo.count_queued(tx, principal)
            if queued >= self.limits.max_queued_per_principal:
                whose = "your" if requested_by in (None, principal) else f"{principal}'s"
                raise Conflict(
                    f"{queued} of {whose} jobs are already queued (the limit is {self.limits.max_queued_per_principal}); "
                    "wait for some to start, or cancel some with job_cancel"
                )
            await self.repo.insert(
                tx,
                {
                    "id": job_id,
                    "kind": kind,
                    "state": JobState.QUEUED.value,
                    "arguments": dumps(arguments),
                    "principal": principal,
                    "priority": priority,
                    "gpus": resources.gpus,
                    "memory_gb": resources.memory_gb,
                    "idempotency_key": idempotency_key,
                    "arguments_hash": fingerprint.hexdigest(),
                    "max_attempts": 1 if job_kind.service else self.limits.max_attempts,
                    "parent_id": parent_id,
                    "executor": self.executor.name,
                    "created_at": now,
                },
            )
        (self.runs_dir / job_id).mkdir(parents=True, exist_ok=True)
        job = await self.repo.get(job_id)
        self.bus.publish(JobUpdate(job, "state"))
        self._wake.set()
        return JobHandle(job_id=job.id, kind=job.kind, state=job.state)

    async def resume(self, job_id: str, principal: Principal) -> JobHandle:
        """A new job that repeats a FAILED or CANCELED one of `principal`'s (an admin's: anyone's);
        kinds that checkpoint pick up from the old run's newest complete checkpoint. The new job
        belongs to the old one's owner, whoever resumes it: the continuation of a run stays
        visible to the person whose run it is, and counts against their queue."""
        job = await self.get(job_id, principal)
        if job.state not in (JobState.FAILED, JobState.CANCELED):
            raise Conflict(f"job {job_id} is {job.state.value}; only FAILED or CANCELED jobs can be resumed")
        handle = await self.submit(job.kind, job.arguments, job.principal, priority=job.priority, parent_id=job.id,
                                   requested_by=principal.name)  # fmt: skip
        if principal.name != job.principal:
            log.info("job %s (%s's) resumed by %s as %s", job.id, job.principal, principal.name, handle.job_id)
        return handle

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

    # cancellation --------------------------------------------------------------------

    async def cancel(self, job_id: str, principal: Principal | None = None) -> Job:
        """Idempotent in every state. Returns once the job is terminal (bounded by the grace
        period). With `principal`, only a job they may act on; without, the server's own call."""
        if principal is not None:
            await self.get(job_id, principal)
        async with self._lock:
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
            self._stop_requested({job_id})
        return await self.wait(job_id, self.limits.cancel_grace_s + 5.0)

    def _stop_requested(self, job_ids: set[str] | None = None) -> None:
        for job_id, supervision in self._running.items():
            if supervision.kill_at is None and (job_ids is None or job_id in job_ids):
                supervision.kill_at = time.time() + self.limits.cancel_grace_s
                self.executor.request_stop(supervision.handle)

    # waiting -------------------------------------------------------------------------

    async def wait(
        self, job_id: str, timeout_s: float, on_progress: ProgressCallback | None = None, principal: Principal | None = None
    ) -> Job:
        """Until the job is terminal or `timeout_s` passes. Updates come from this process's
        bus, or from the database when another process supervises the job. With `principal`,
        only a job they may see."""
        if principal is not None:
            await self.get(job_id, principal)
        deadline = time.monotonic() + timeout_s
        with self.bus.subscribe(job_id) as updates:
            job = await self.repo.get(job_id)
            seen = _progress_key(job)
            while not job.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                    # lands as the update arrives, and the waiter (job_wait) would not stop when cancelled.
                    async with asyncio.timeout(min(remaining, C.WAIT_POLL_S)):
                        await updates.get()
                except TimeoutError:
                    pass
                job = await self.repo.get(job_id)
                if on_progress is not None and _progress_key(job) != seen:
                    seen = _progress_key(job)
                    await on_progress(job)
            return job

    # the loop body -------------------------------------------------------------------

    async def tick(self) -> None:
        async with self._lock:
            if self._running:
                self._stop_requested(await self.repo.cancel_requested_ids())
            for job_id, supervision in list(self._running.items()):
                await self._supervise(job_id, supervision)
            await self._admit()

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
            failed = await self.repo.transition(job.id, JobState.FAILED, reason=C.REASON_LAUNCH_FAILED,
                                                error=f"runs/{job.id} leads outside the workspace through a symbolic "
                                                "link; remove the link, then start the job again")  # fmt: skip
            self.bus.publish(JobUpdate(failed, "state"))
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
            error = f"could not start the worker (ref {ref}): {self.scrub(str(exc))}; the server log has the detail"
            failed = await self.repo.transition(job.id, JobState.FAILED, reason=C.REASON_LAUNCH_FAILED, error=error)
            self.bus.publish(JobUpdate(failed, "state"))
            return
        await self.repo.update(job.id, pid=handle.pid, host=handle.host, pid_started_at=handle.started_at)
        self._running[job.id] = Supervision(handle=handle, tail=EventTail(events), last_beat=now)

    async def _supervise(self, job_id: str, sup: Supervision) -> None:
        await self._read_events(job_id, sup)
        now = time.time()
        if not self.executor.is_alive(sup.handle):
            await self._read_events(job_id, sup)  # whatever it wrote just before exiting
            await self._finish(job_id, sup, lost_reason=self._exit_reason(sup.handle))
        elif now - sup.last_beat > self.limits.lease_s:
            log.warning("job %s: no heartbeat for %.0fs; killing its worker", job_id, now - sup.last_beat)
            await asyncio.to_thread(self.executor.kill_now, sup.handle)
            await self._finish(job_id, sup, lost_reason=C.REASON_HEARTBEAT_LOST)
        elif sup.kill_at is not None and now > sup.kill_at:
            await asyncio.to_thread(self.executor.kill_now, sup.handle)

    def _exit_reason(self, handle: WorkerHandle) -> str:
        code = self.executor.exit_code(handle)
        if code is not None and code < 0:
            return f"{C.REASON_WORKER_LOST}: killed by signal {-code}"
        if code is not None:
            return f"{C.REASON_WORKER_LOST}: exited with code {code} without reporting an outcome"
        return C.REASON_WORKER_LOST

    async def _read_events(self, job_id: str, sup: Supervision) -> None:
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

    async def _finish(self, job_id: str, sup: Supervision, *, lost_reason: str) -> None:
        """The worker is gone: settle the job from its outcome event, or as lost."""
        self._running.pop(job_id, None)
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
        self._wake.set()

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

    # recovery ------------------------------------------------------------------------

    async def reconcile(self) -> None:
        """At start-up: adopt RUNNING jobs whose worker still lives; settle the others from
        their event files, or as lost with reason server_restart."""
        async with self._lock:
            for job in await self.repo.list([JobState.RUNNING], limit=100_000):
                tail = EventTail(self.runs_dir / job.id / C.RUN_EVENTS)
                handle = (
                    WorkerHandle(job_id=job.id, pid=job.pid, started_at=job.pid_started_at or 0.0, host=job.host or "")
                    if job.pid
                    else None
                )
                sup = Supervision(
                    handle=handle or WorkerHandle(job_id=job.id, pid=0, started_at=0.0, host=""),
                    tail=tail,
                    last_beat=time.time(),
                )
                if handle is not None and self.executor.owns(handle) and self.executor.is_alive(handle):
                    log.info("job %s: adopting its running worker (pid %d)", job.id, handle.pid)
                    self._running[job.id] = sup
                    await self._read_events(job.id, sup)
                    continue
                await self._read_events(job.id, sup)
                await self._finish(job.id, sup, lost_reason=C.REASON_SERVER_RESTART)

    # queries -------------------------------------------------------------------------

    def supervised(self) -> list[str]:
        return list(self._running)


def _owner_filter(principal: Principal) -> str | None:
    """Whose jobs `principal` sees: None for every job (admin, local operator), else their own."""
    return None if principal.sees_everything else principal.name


def _progress_key(job: Job) -> tuple[Any, ...]:
    return (job.state, job.progress.done, job.progress.total, job.progress.message)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


