"""Which queued jobs may start now, given what is running and what the machine offers."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.jobs.constants import SERVICE_SLOTS
from forge_mcp.jobs.models import Job


@dataclass(frozen=True)
class Capacity:
    gpu_slots: int  # one training job per GPU by default
    cpu_slots: int  # concurrent jobs that need no GPU
    memory_gb: float  # host memory jobs may declare in total
    service_slots: int = SERVICE_SLOTS  # concurrent services that need no GPU, apart from the CPU jobs


def admit(queued: list[Job], running: list[Job], capacity: Capacity, service_kinds: frozenset[str] = frozenset()) -> list[Job]:
    """`queued` comes highest priority first (then oldest). Once a job of one class (GPU,
    CPU or CPU service) has to wait, no lower-priority job of the same class jumps ahead of
    it; a job of another class may still start. A job declaring more memory than the whole
    budget may run, but only alone. Services of `service_kinds` run for as long as they
    are wanted, so they have slots of their own and never hold up training."""

    def lane_of(job: Job) -> str:
        return "gpu" if job.resources.gpus else "service" if job.kind in service_kinds else "cpu"

    gpus = sum(j.resources.gpus for j in running)
    taken = {"cpu": 0, "service": 0}
    for job in running:
        if lane_of(job) != "gpu":
            taken[lane_of(job)] += 1
    slots = {"cpu": capacity.cpu_slots, "service": capacity.service_slots}
    memory = sum(j.resources.memory_gb for j in running)
    busy = bool(running)
    blocked = {"gpu": False, "cpu": False, "service": False}
    chosen: list[Job] = []
    for job in queued:
        lane = lane_of(job)
        if blocked[lane]:
            continue
        fits_lane = gpus + job.resources.gpus <= capacity.gpu_slots if lane == "gpu" else taken[lane] + 1 <= slots[lane]
        fits_memory = memory + job.resources.memory_gb <= capacity.memory_gb or not busy
        if not (fits_lane and fits_memory):
            blocked[lane] = True
            continue
        chosen.append(job)
        gpus += job.resources.gpus
        if lane != "gpu":
            taken[lane] += 1
        memory += job.resources.memory_gb
        busy = True
    return chosen
