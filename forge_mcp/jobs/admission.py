"""Which queued jobs may start now, and on which host, given what is running and what each
host offers. Capacity is per host: an executor names its hosts and what each takes at once
(Executor.hosts); a job starts on the first host of its executor where it fits."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from forge_mcp.jobs.constants import SERVICE_SLOTS
from forge_mcp.jobs.models import Job

Lane = str  # "gpu", "cpu" or "service": jobs of one lane share slots and keep their order
LANES: tuple[Lane, ...] = ("gpu", "cpu", "service")


@dataclass(frozen=True)
class Capacity:
    gpu_slots: int  # one training job per GPU by default
    cpu_slots: int  # concurrent jobs that need no GPU
    memory_gb: float  # host memory jobs may declare in total
    service_slots: int = SERVICE_SLOTS  # concurrent services that need no GPU, apart from the CPU jobs


@dataclass(frozen=True)
class Placement:
    job: Job
    host: str | None  # None: its executor holds no slots (work the server runs itself)


@dataclass
class HostLoad:
    """What one host runs now, and which lanes have a job waiting for it."""

    capacity: Capacity
    gpus: int = 0
    taken: dict[Lane, int] = field(default_factory=lambda: {"cpu": 0, "service": 0})
    memory_gb: float = 0.0
    busy: bool = False
    blocked: set[Lane] = field(default_factory=set)

    def fits(self, job: Job, lane: Lane) -> bool:
        """A job declaring more memory than the whole budget may run, but only alone."""
        if lane in self.blocked:
            return False
        if lane == "gpu":
            fits_lane = self.gpus + job.resources.gpus <= self.capacity.gpu_slots
        else:
            slots = self.capacity.cpu_slots if lane == "cpu" else self.capacity.service_slots
            fits_lane = self.taken[lane] + 1 <= slots
        return fits_lane and (self.memory_gb + job.resources.memory_gb <= self.capacity.memory_gb or not self.busy)

    def take(self, job: Job, lane: Lane) -> None:
        self.gpus += job.resources.gpus
        if lane != "gpu":
            self.taken[lane] += 1
        self.memory_gb += job.resources.memory_gb
        self.busy = True


def place(
    queued: list[Job],
    running: list[Job],
    hosts: Mapping[str, Mapping[str, Capacity]],
    service_kinds: frozenset[str] = frozenset(),
) -> list[Placement]:
    """`queued` comes highest priority first (then oldest); `hosts` maps each executor's name
    to its hosts. Running jobs count on the host recorded for them. Once a job of one lane
    (GPU, CPU or CPU service) has to wait, no lower-priority job of that lane jumps ahead of it
    on the hosts it waits for; a job of another lane may still start. Services of
    `service_kinds` run for as long as they are wanted, so they have slots of their own and
    never hold up training. A job of an executor with no hosts starts at once; one of an
    executor not in `hosts`, or that names a host its executor no longer has, is left out.
    A job that names its host (a compute target) waits for that host only."""
    lane_of = _lanes(service_kinds)
    loads = {host: HostLoad(capacity) for offered in hosts.values() for host, capacity in offered.items()}
    for job in running:
        if job.host in loads:
            loads[job.host].take(job, lane_of(job))
    chosen: list[Placement] = []
    for job in queued:
        offered = hosts.get(job.executor)
        if offered is None:
            continue
        if not offered:
            chosen.append(Placement(job, None))
            continue
        if job.host is not None:  # the caller named where it runs (a compute target)
            offered = {job.host: offered[job.host]} if job.host in offered else {}
            if not offered:
                continue  # its target is gone (compute_remove refuses while jobs are queued there)
        lane = lane_of(job)
        host = next((name for name in offered if loads[name].fits(job, lane)), None)
        if host is None:
            for name in offered:
                loads[name].blocked.add(lane)
            continue
        loads[host].take(job, lane)
        chosen.append(Placement(job, host))
    return chosen


def admit(queued: list[Job], running: list[Job], capacity: Capacity, service_kinds: frozenset[str] = frozenset()) -> list[Job]:
    """One host: which of `queued` start now beside `running`, by place's rules."""
    lane_of = _lanes(service_kinds)
    load = HostLoad(capacity)
    for job in running:
        load.take(job, lane_of(job))
    chosen = []
    for job in queued:
        lane = lane_of(job)
        if load.fits(job, lane):
            load.take(job, lane)
            chosen.append(job)
        else:
            load.blocked.add(lane)
    return chosen


def job_lane(gpus: int, kind: str, service_kinds: frozenset[str]) -> Lane:
    """The lane of a job that claims `gpus` GPU slots and is of `kind` (also what /metrics counts
    queued jobs by)."""
    return "gpu" if gpus else "service" if kind in service_kinds else "cpu"


def _lanes(service_kinds: frozenset[str]) -> Callable[[Job], Lane]:
    def lane_of(job: Job) -> Lane:
        return job_lane(job.resources.gpus, job.kind, service_kinds)

    return lane_of
