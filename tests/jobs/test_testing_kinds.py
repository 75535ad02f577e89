"""The test kinds drive the engine's failure paths with real workers: a job that fails, one
whose worker ignores SIGTERM (the kill after the grace period ends it), one that leaves a
grandchild behind in another session (the engine finds it by its environment)."""

from __future__ import annotations

import time

import psutil

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.jobs.states import JobState
from tests.jobs.conftest import AppFactory, running_with_pid
from tests.polling import until


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_a_failing_job_fails_with_its_message(forge: AppFactory) -> None:
    app = await forge()
    refused = await app.jobs.submit("test_fail", {"message": "the data ran out"}, "tester")
    crashed = await app.jobs.submit("test_fail", {"message": "boom", "unexpected": True}, "tester")
    refused_job, crashed_job = [await app.jobs.wait(h.job_id, 60) for h in (refused, crashed)]
    assert (refused_job.state, refused_job.reason, refused_job.error) == (JobState.FAILED, "error", "the data ran out")
    assert crashed_job.state is JobState.FAILED and crashed_job.reason == "worker_error"
    assert "unexpected error (ref " in crashed_job.error and "boom" in crashed_job.error
    assert refused_job.attempt == crashed_job.attempt == 1  # a job that reported its failure is not retried


async def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(forge: AppFactory) -> None:
    app = await forge(job_cancel_grace_s=1.0)
    handle = await app.jobs.submit("test_hang", {"stop_heartbeat": False, "ignore_sigterm": True}, "tester")
    job = await running_with_pid(app, handle.job_id)

    async def hanging() -> bool:
        return (await app.jobs.repo.get(handle.job_id)).progress.message == "hanging"

    await until(hanging, what="the worker to ignore SIGTERM")
    started = time.monotonic()
    canceled = await app.jobs.cancel(job.id)
    assert canceled.state is JobState.CANCELED
    assert time.monotonic() - started >= 0.9  # it outlived the SIGTERM until the grace period ran out
    assert gone(job.pid) and not job_processes(job.id)


async def test_a_grandchild_that_left_the_group_does_not_outlive_its_job(forge: AppFactory) -> None:
    app = await forge()
    handle = await app.jobs.submit("test_spawn", {"child_seconds": 600, "new_session": True}, "tester")
    job = await app.jobs.wait(handle.job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    pid = job.result["grandchild_pid"]
    assert gone(pid) and not job_processes(job.id)


async def test_a_canceled_job_takes_its_grandchild_with_it(forge: AppFactory) -> None:
    app = await forge()
    handle = await app.jobs.submit("test_spawn", {"child_seconds": 600, "new_session": True, "wait_s": 600}, "tester")
    await running_with_pid(app, handle.job_id)

    async def spawned() -> bool:
        return "grandchild" in ((await app.jobs.repo.get(handle.job_id)).progress.message or "")

    await until(spawned, what="the grandchild to start")
    pid = int((await app.jobs.repo.get(handle.job_id)).progress.message.split()[-1])
    assert not gone(pid)
    canceled = await app.jobs.cancel(handle.job_id)
    assert canceled.state is JobState.CANCELED
    assert gone(pid) and not job_processes(handle.job_id)
