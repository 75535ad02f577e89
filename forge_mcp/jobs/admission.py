"""Which queued jobs may start now, given what is running and what the machine offers."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.jobs.models import Job


@dataclass(frozen=True)
class Capacity:
    gpu_slots: int  # one training job per GPU by default
    cpu_slots: int  # concurrent jobs that need no GPU
    memory_gb: float  # host memory jobs may declare in total


def admit(queued: list[Job], running: list[Job], capacity: Capacity) -> list[Job]:
    """`queued` comes highest priority first (then oldest). Once a job of one class (GPU or
    CPU) has to wait, no lower-priority job of the same class jumps ahead of it; a job of
    the other class may still start. A job declaring more memory than the whole budget
    may run, but only alone."""
    gpus = sum(j.resources.gpus for j in running)
    cpu_jobs = sum(1 for j in running if j.resources.gpus == 0)
    memory = sum(j.resources.memory_gb for j in running)
    busy = bool(running)
    blocked = {"gpu": False, "cpu": False}
    chosen: list[Job] = []
    for job in queued:
        lane = "gpu" if job.resources.gpus else "cpu"
        if blocked[lane]:
            continue
        fits_lane = (
            gpus + job.resources.gpus <= capacity.gpu_slots if lane == "gpu" else cpu_jobs + 1 <= capacity.cpu_slots
        )
        fits_memory = memory + job.resources.memory_gb <= capacity.memory_gb or not busy
        if not (fits_lane and fits_memory):
            blocked[lane] = True
            continue
        chosen.append(job)
        gpus += job.resources.gpus
        cpu_jobs += lane == "cpu"
        memory += job.resources.memory_gb
        busy = True
    return chosen
