"""Admission: priorities first, one job per GPU slot, CPU slots, memory budget."""

from __future__ import annotations

import itertools

from forge_mcp.jobs.admission import Capacity, admit, place
from forge_mcp.jobs.models import Job, Progress, Resources
from forge_mcp.jobs.states import JobState

_ids = itertools.count()


def job(priority: int = 0, gpus: int = 0, memory_gb: float = 0.0, state: JobState = JobState.QUEUED, kind: str = "k") -> Job:
    n = next(_ids)
    return Job(
        id=f"job_{n:08x}", kind=kind, state=state, arguments={}, principal="p", priority=priority,
        resources=Resources(gpus=gpus, memory_gb=memory_gb), attempt=0, max_attempts=2,
        progress=Progress(), created_at=float(n),
    )  # fmt: skip


def by_priority(*jobs: Job) -> list[Job]:
    return sorted(jobs, key=lambda j: (-j.priority, j.created_at))


CAP = Capacity(gpu_slots=1, cpu_slots=2, memory_gb=100.0)


def test_one_gpu_slot_admits_one_gpu_job_highest_priority_first() -> None:
    low, high = job(priority=0, gpus=1), job(priority=5, gpus=1)
    assert admit(by_priority(low, high), [], CAP) == [high]


def test_busy_gpu_slot_admits_no_gpu_job() -> None:
    running = [job(gpus=1, state=JobState.RUNNING)]
    assert admit([job(gpus=1)], running, CAP) == []


def test_cpu_jobs_use_their_own_slots_while_gpu_jobs_wait() -> None:
    running = [job(gpus=1, state=JobState.RUNNING)]
    waiting_gpu, cpu_a, cpu_b, cpu_c = job(priority=9, gpus=1), job(), job(), job()
    assert admit(by_priority(waiting_gpu, cpu_a, cpu_b, cpu_c), running, CAP) == [cpu_a, cpu_b]


def test_a_blocked_job_is_not_overtaken_by_a_lower_priority_one_of_its_lane() -> None:
    capacity = Capacity(gpu_slots=2, cpu_slots=2, memory_gb=100.0)
    running = [job(gpus=1, state=JobState.RUNNING)]
    big, small = job(priority=5, gpus=2), job(priority=1, gpus=1)
    assert admit(by_priority(big, small), running, capacity) == []


def test_memory_budget_holds_but_an_oversized_job_may_run_alone() -> None:
    capacity = Capacity(gpu_slots=0, cpu_slots=4, memory_gb=10.0)
    first, second = job(memory_gb=6.0), job(memory_gb=6.0)
    assert admit(by_priority(first, second), [], capacity) == [first]
    huge = job(memory_gb=50.0)
    assert admit([huge], [], capacity) == [huge]
    assert admit([huge], [job(memory_gb=1.0, state=JobState.RUNNING)], capacity) == []


def test_services_have_their_own_slots_and_never_hold_up_training() -> None:
    services = frozenset({"serve"})
    cap = Capacity(gpu_slots=0, cpu_slots=1, memory_gb=100.0, service_slots=2)
    running = [job(kind="serve", state=JobState.RUNNING), job(kind="train", state=JobState.RUNNING)]
    queued = [job(kind="serve"), job(kind="serve"), job(kind="train")]
    # One service slot is left; the CPU slot is taken by the running training job.
    assert admit(queued, running, cap, services) == [queued[0]]
    # A running service does not count against the CPU jobs.
    assert admit([queued[2]], running[:1], cap, services) == [queued[2]]


def on(executor: str, *jobs: Job, host: str | None = None) -> list[Job]:
    return [j.model_copy(update={"executor": executor, "host": host}) for j in jobs]


def test_capacity_is_per_host_and_a_job_goes_where_it_fits() -> None:
    hosts = {"ssh": {"a": Capacity(gpu_slots=1, cpu_slots=1, memory_gb=100.0),
                     "b": Capacity(gpu_slots=2, cpu_slots=1, memory_gb=100.0)}}  # fmt: skip
    running = on("ssh", job(gpus=1, state=JobState.RUNNING), host="a")  # a's one GPU is taken
    one, two, big = on("ssh", job(priority=3, gpus=1), job(priority=2, gpus=1), job(priority=1, gpus=2))
    placed = place([one, two, big], running, hosts)
    assert [(p.job, p.host) for p in placed] == [(one, "b"), (two, "b")]  # big waits: no host has 2 free


def test_a_job_whose_executor_holds_no_slots_starts_at_once_and_an_unknown_executor_is_left_out() -> None:
    hosts = {"local": {"here": Capacity(gpu_slots=0, cpu_slots=1, memory_gb=1.0)}, "server": {}}
    running = on("local", job(state=JobState.RUNNING), host="here")  # the one CPU slot is taken
    waiting, orchestration, elsewhere = on("local", job()) + on("server", job(gpus=4, memory_gb=50.0)) + on("ssh", job())
    placed = place([waiting, orchestration, elsewhere], running, hosts)
    assert [(p.job, p.host) for p in placed] == [(orchestration, None)]
