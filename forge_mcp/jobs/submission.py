"""Submission: a new job row (QUEUED), after the checks that make it one worth queueing —
a registered kind, resources some slot can hold, the caller's queue limit, and the
idempotency key (the same key returns the same job; with other arguments it is a conflict)."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from forge_mcp.errors import Conflict, InvalidArguments, NotFound, PathRefused
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import HostLoad, job_lane
from forge_mcp.jobs.engine_state import EngineState
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.executors.base import Executor
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.jobs.models import Job, JobHandle, Resources
from forge_mcp.jobs.repository import JobRepository, dumps
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from forge_mcp.store import Transaction

log = logging.getLogger("forge_mcp.jobs")


class Submission:
    def __init__(
        self,
        repository: JobRepository,
        bus: JobEventBus,
        kinds: Mapping[str, JobKind],
        runs_dir: Path,
        limits: EngineLimits,
        executors: Mapping[str, Executor],
        default_executor: str,
        state: EngineState,
    ) -> None:
        """A job runs on the executor it names at submission, `default_executor` unless it names one."""
        self.repo = repository
        self.bus = bus
        self.kinds = kinds
        self.runs_dir = runs_dir
        self.limits = limits
        self.executors = executors
        self.default_executor = default_executor
        self.state = state

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
        else (an admin resuming another's job), so a refusal names whose queue is full. With
        `host`, it runs on that host of its executor only (a compute target by name);
        `retry_elsewhere` lets it run again on another machine if that host is lost (see elsewhere)."""
        job_kind = self._kind(kind)
        checked = job_kind.parse_arguments(arguments)  # once, here: a mismatch is refused naming the field
        arguments = checked.model_dump(mode="json")  # stored as the kind's model has them, defaults included
        resources = job_kind.resources(checked)
        host = None if host == C.LOCAL_TARGET else host
        executor = executor or job_kind.executor or (self.executor_of(host) if host else self.default_executor)
        self._check_fits(resources, executor, host)
        fingerprint = hashlib.sha256(dumps({"kind": kind, "arguments": arguments, "priority": priority}).encode()).hexdigest()
        now = time.time()
        job_id = f"{C.JOB_ID_PREFIX}{int(now * 1000):x}{secrets.token_hex(4)}"
        async with self.repo.transaction() as tx:  # the key check and the insert are one step
            if idempotency_key is not None:
                existing = await self._same_request(tx, principal, idempotency_key, fingerprint)
                if existing is not None:
                    return JobHandle(job_id=existing.id, kind=existing.kind, state=existing.state, deduplicated=True)
            await self._check_queue(tx, principal, requested_by)
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
                    "processes": resources.processes,
                    "idempotency_key": idempotency_key,
                    "arguments_hash": fingerprint,
                    "max_attempts": 1 if job_kind.service else self.limits.max_attempts,
                    "parent_id": parent_id,
                    "executor": executor,
                    "host": host,
                    "retry_elsewhere": int(retry_elsewhere),
                    "created_at": now,
                },
            )
        RunDir(self.runs_dir, job_id).path.mkdir(parents=True, exist_ok=True)
        job = await self.repo.get(job_id)
        self.bus.publish(JobUpdate(job, "state"))
        self.state.wake.set()
        return JobHandle(job_id=job.id, kind=job.kind, state=job.state)

    async def resume(self, job: Job, principal: Principal) -> JobHandle:
        """A new job that repeats `job` (FAILED or CANCELED; the caller checked that `principal`
        may act on it); kinds that checkpoint pick up from the old run's newest complete
        checkpoint. The new job belongs to the old one's owner, whoever resumes it: the
        continuation of a run stays visible to the person whose run it is, and counts
        against their queue. It runs where the old one ran: the same executor, and the same host
        while that executor still has it (a compute target keeps the old run's checkpoints)."""
        if job.state not in (JobState.FAILED, JobState.CANCELED):
            raise Conflict(f"job {job.id} is {job.state.value}; only FAILED or CANCELED jobs can be resumed")
        executor = self.executors.get(job.executor)
        host = job.host if executor is not None and job.host in executor.hosts() else None
        handle = await self.submit(job.kind, job.arguments, job.principal, priority=job.priority, parent_id=job.id,
                                   requested_by=principal.name, executor=job.executor, host=host,
                                   retry_elsewhere=job.retry_elsewhere)  # fmt: skip
        if principal.name != job.principal:
            log.info("job %s (%s's) resumed by %s as %s", job.id, job.principal, principal.name, handle.job_id)
        return handle

    def _kind(self, kind: str) -> JobKind:
        job_kind = self.kinds.get(kind)
        if job_kind is None:
            raise NotFound(f"job kind {kind!r} is not registered")
        return job_kind

    def elsewhere(self, job: Job) -> tuple[str, str | None] | None:
        """Where a job whose host was lost runs again: this machine when the job fits its slots,
        else the first other compute target by name whose slots and memory fit; None: nowhere.
        What fits is what admission lets start on an idle host (its slots), and the declared
        memory within the host's: a retry is not put where it could only run alone past it.
        Not a new plan."""
        candidates = [(self.default_executor, host, capacity) for host, capacity in self.executors[self.default_executor].hosts().items()]
        candidates += sorted(((name, host, capacity) for name, executor in self.executors.items() if name != self.default_executor
                              for host, capacity in executor.hosts().items()), key=lambda c: c[1])  # fmt: skip
        lane = job_lane(job.resources.gpus, job.kind, frozenset())  # a service is never retried (one attempt)
        for name, host, capacity in candidates:
            memory_fits = capacity.memory_gb <= 0 or job.resources.memory_gb <= capacity.memory_gb
            if (name, host) != (job.executor, job.host) and HostLoad(capacity).fits(job, lane) and memory_fits:
                return name, None if name == self.default_executor else host
        return None

    def executor_of(self, host: str) -> str:
        """The executor that offers compute target `host` (SSH or Ray); "local": this machine's."""
        if host == C.LOCAL_TARGET:
            return self.default_executor
        for name, executor in self.executors.items():
            if host in executor.hosts():
                return name
        known = sorted(h for name, e in self.executors.items() if name != self.default_executor for h in e.hosts())
        raise InvalidArguments(f"argument 'compute': no compute target {host!r} (there are: {', '.join(known) or 'none'}); "
                               "compute_list lists them, compute_add adds one")  # fmt: skip

    def _check_fits(self, resources: Resources, executor: str, host: str | None) -> None:
        """Refuse at once what could never start here, rather than queue it forever: a job
        needs a host of its executor with enough GPU slots (an executor without hosts holds none)."""
        if executor not in self.executors:
            raise InvalidArguments(f"executor {executor!r} is not configured on this server (it has: "
                                   f"{', '.join(sorted(self.executors))})")  # fmt: skip
        hosts = self.executors[executor].hosts()
        if host is not None:
            if host not in hosts:
                raise InvalidArguments(f"argument 'compute': no compute target {host!r} (there are: "
                                       f"{', '.join(sorted(hosts)) or 'none'}); compute_list lists them, compute_add adds one")  # fmt: skip
            hosts = {host: hosts[host]}
        most = max((capacity.gpu_slots for capacity in hosts.values()), default=None)
        if most is not None and resources.gpus > most:
            raise InvalidArguments(
                f"this job needs {resources.gpus} GPU(s) but the server has {most} GPU slot(s); "
                "ask for fewer GPUs, or run it on a machine with more (gpu_slots setting)"
            )
        if not self.runs_dir.resolve().is_relative_to(self.runs_dir.parent.resolve()):
            raise PathRefused("the workspace folder runs leads outside the workspace through a symbolic link, and "
                              "forge-mcp writes only inside the workspace; remove the link, then try again")  # fmt: skip

    async def _same_request(self, tx: Transaction, principal: str, key: str, fingerprint: str) -> Job | None:
        """The job `key` already names for `principal`, if any; a conflict when it was asked with other arguments."""
        existing = await self.repo.find_by_key(tx, principal, key)
        if existing is None:
            return None
        row = await tx.fetchone("SELECT arguments_hash FROM jobs WHERE id = ?", (existing.id,))
        if row["arguments_hash"] != fingerprint:
            raise Conflict(
                f"idempotency_key {key!r} was already used for job {existing.id} with other "
                "arguments; reuse it only to repeat the same request, or pick a new key"
            )
        return existing

    async def _check_queue(self, tx: Transaction, principal: str, requested_by: str | None) -> None:
        queued = await self.repo.count_queued(tx, principal)
        if queued >= self.limits.max_queued_per_principal:
            whose = "your" if requested_by in (None, principal) else f"{principal}'s"
            raise Conflict(
                f"{queued} of {whose} jobs are already queued (the limit is {self.limits.max_queued_per_principal}); "
                "wait for some to start, or cancel some with job_cancel"
            )
