"""The job engine with real worker processes: lifecycle, cancellation in every state,
idempotency, admission, crashes and hung workers."""

from __future__ import annotations

import asyncio
import os
import signal

import psutil
import pytest

from forge_mcp.errors import Conflict, InvalidArguments
from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from tests.jobs.conftest import BENCH_QUICK, LONG, QUICK, SLEEP, AppFactory, running_with_pid, until

TESTER = Principal("tester", frozenset({"train"}))  # resumes its own jobs, not an admin


async def test_a_job_runs_to_success_with_progress_metrics_and_log(forge: AppFactory) -> None:
    app = await forge()
    handle = await app.jobs.submit("test_events", {"progress": 4, "metrics": 5, "log_lines": 3}, "tester")
    assert handle.state is JobState.QUEUED
    job = await app.jobs.wait(handle.job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result == {"progress": 4, "metrics": 5, "log_lines": 3}
    assert job.progress.percent == 100.0
    assert job.attempt == 1 and job.pid is not None
    transitions = await app.jobs.repo.transitions(job.id)
    assert [t[1] for t in transitions] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    [series] = await app.jobs.repo.metrics(job.id, None, 100)
    assert series.name == "loss" and len(series.points) == 5
    log = app.workspace.run(job.id).log.read_text()
    assert "log line 1" in log and "log line 3" in log
    assert not job_processes(job.id)


async def test_system_benchmark_runs_as_a_job_and_reports_a_gpu_it_lacks(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1)
    handle = await app.jobs.submit("system_benchmark", {**BENCH_QUICK, "devices": ["cpu", "cuda:0"]}, "tester")
    job = await app.jobs.wait(handle.job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.result["matmul"][0]["gflops"] > 0
    assert job.result["matmul"][1] == {**job.result["matmul"][1], "device": "cuda:0", "available": False}
    assert job.result["memory_bandwidth_gbs"] > 0 and job.result["disk_write_mbs"] > 0
    series = {s.name for s in await app.jobs.repo.metrics(job.id, None, 100)}
    assert {"matmul_gflops/cpu", "memory_bandwidth_gbs", "disk_write_mbs"} <= series
    log = app.workspace.run(job.id).log.read_text()
    assert "matmul cpu" in log and "disk write" in log
    assert not job_processes(job.id)


async def test_cancel_running_twice_kills_every_process(forge: AppFactory) -> None:
    app = await forge()
    handle = await app.jobs.submit(SLEEP, LONG, "tester")
    job = await running_with_pid(app, handle.job_id)
    first = await app.jobs.cancel(job.id)
    second = await app.jobs.cancel(job.id)
    assert first.state is second.state is JobState.CANCELED
    assert first.reason == "canceled"
    assert not psutil.pid_exists(job.pid) or psutil.Process(job.pid).status() == psutil.STATUS_ZOMBIE
    assert not job_processes(job.id)


async def test_cancel_queued_twice_never_starts_it(forge: AppFactory) -> None:
    app = await forge(cpu_job_slots=1)
    blocker = await app.jobs.submit(SLEEP, LONG, "tester")
    await running_with_pid(app, blocker.job_id)
    queued = await app.jobs.submit(SLEEP, QUICK, "tester")
    first = await app.jobs.cancel(queued.job_id)
    second = await app.jobs.cancel(queued.job_id)
    assert first.state is second.state is JobState.CANCELED
    assert first.started_at is None and first.pid is None
    assert [t[1] for t in await app.jobs.repo.transitions(queued.job_id)] == ["QUEUED", "CANCELED"]


async def test_cancel_terminal_twice_changes_nothing(forge: AppFactory) -> None:
    app = await forge()
    done = await app.jobs.wait((await app.jobs.submit(SLEEP, QUICK, "tester")).job_id, 60)
    assert done.state is JobState.SUCCEEDED
    for _ in range(2):
        again = await app.jobs.cancel(done.id)
        assert again.state is JobState.SUCCEEDED and again.finished_at == done.finished_at


async def test_fifty_concurrent_submissions_with_one_key_make_one_job(forge: AppFactory) -> None:
    app = await forge()
    handles = await asyncio.gather(
        *(app.jobs.submit(SLEEP, QUICK, "tester", idempotency_key="bench-1") for _ in range(50))
    )
    assert len({h.job_id for h in handles}) == 1
    assert sum(not h.deduplicated for h in handles) == 1
    assert len(await app.jobs.repo.list(kind=SLEEP)) == 1
    with pytest.raises(Conflict, match="idempotency_key 'bench-1' was already used"):
        await app.jobs.submit(SLEEP, {"seconds": 0.2}, "tester", idempotency_key="bench-1")
    # keys are per principal: another caller's identical key is a different job
    other = await app.jobs.submit(SLEEP, QUICK, "someone-else", idempotency_key="bench-1")
    assert other.job_id != handles[0].job_id


async def test_queued_jobs_per_principal_are_capped(forge: AppFactory) -> None:
    app = await forge(cpu_job_slots=1, max_queued_per_principal=2)
    await running_with_pid(app, (await app.jobs.submit(SLEEP, LONG, "tester")).job_id)
    await app.jobs.submit(SLEEP, QUICK, "tester")
    await app.jobs.submit(SLEEP, QUICK, "tester")
    with pytest.raises(Conflict, match="already queued \\(the limit is 2\\)"):
        await app.jobs.submit(SLEEP, QUICK, "tester")


async def test_one_gpu_slot_runs_gpu_jobs_one_after_another_by_priority(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1)
    gpu = {"seconds": 0.3, "gpus": 1}
    first = await app.jobs.submit(SLEEP, gpu, "tester")
    await running_with_pid(app, first.job_id)
    low = await app.jobs.submit(SLEEP, gpu, "tester", priority=0)
    high = await app.jobs.submit(SLEEP, gpu, "tester", priority=10)
    jobs = [await app.jobs.wait(h.job_id, 60) for h in (first, low, high)]
    assert all(j.state is JobState.SUCCEEDED for j in jobs), [j.error for j in jobs]
    first_job, low_job, high_job = jobs
    assert first_job.finished_at <= high_job.started_at <= high_job.finished_at <= low_job.started_at


async def test_more_gpus_than_slots_is_refused_at_submission(forge: AppFactory) -> None:
    app = await forge(gpu_slots=0)
    with pytest.raises(InvalidArguments, match="needs 1 GPU\\(s\\) but the server has 0 GPU slot"):
        await app.jobs.submit(SLEEP, {**QUICK, "gpus": 1}, "tester")


async def test_a_killed_worker_is_retried_then_failed_with_a_reason(forge: AppFactory) -> None:
    app = await forge(job_max_attempts=2)
    handle = await app.jobs.submit(SLEEP, LONG, "tester")
    for attempt in (1, 2):
        job = await running_with_pid(app, handle.job_id)
        assert job.attempt == attempt
        os.kill(job.pid, signal.SIGKILL)

        async def moved_on(pid: int = job.pid) -> bool:
            current = await app.jobs.repo.get(handle.job_id)
            return current.terminal or current.pid not in (None, pid)

        await until(moved_on, what="the engine to notice the dead worker")
    job = await app.jobs.wait(handle.job_id, 30)
    assert job.state is JobState.FAILED and job.reason == "worker_lost"
    assert "killed by signal 9" in job.error
    reasons = [t[2] for t in await app.jobs.repo.transitions(job.id)]
    assert "retry after worker_lost: killed by signal 9" in reasons
    assert not job_processes(job.id)


async def test_a_hung_worker_loses_its_lease(forge: AppFactory) -> None:
    app = await forge(job_max_attempts=1, job_lease_s=1.5, job_heartbeat_s=0.2)
    handle = await app.jobs.submit("test_hang", {"stop_heartbeat": True, "ignore_sigterm": True}, "tester")
    job = await running_with_pid(app, handle.job_id)  # the worker then stops itself: alive, but no more heartbeats
    job = await app.jobs.wait(handle.job_id, 30)
    assert job.state is JobState.FAILED and job.reason == "heartbeat_lost"
    assert not job_processes(job.id)


async def test_resume_starts_a_new_job_linked_to_the_old_one(forge: AppFactory) -> None:
    app = await forge()
    handle = await app.jobs.submit(SLEEP, LONG, "tester")
    await running_with_pid(app, handle.job_id)
    await app.jobs.cancel(handle.job_id)
    resumed = await app.jobs.resume(handle.job_id, TESTER)
    assert resumed.job_id != handle.job_id
    assert (await app.jobs.repo.get(resumed.job_id)).parent_id == handle.job_id
    with pytest.raises(Conflict, match="only FAILED or CANCELED jobs can be resumed"):
        await app.jobs.resume(resumed.job_id, TESTER)


async def test_a_second_engine_waits_for_the_lock_and_takes_over(forge: AppFactory) -> None:
    first = await forge()
    second = await forge()
    assert first.jobs.active and not second.jobs.active
    handle = await second.jobs.submit(SLEEP, LONG, "tester")  # any process may submit
    job = await running_with_pid(first, handle.job_id)  # the lock holder runs it
    await first.jobs.stop()  # the holder goes away; its worker keeps running
    await until(lambda: _true(second.jobs.active), what="the second engine to take over")
    assert handle.job_id in second.jobs.supervised()
    canceled = await second.jobs.cancel(handle.job_id)
    assert canceled.state is JobState.CANCELED and not job_processes(job.id)


async def _true(value: bool) -> bool:
    return value
