"""Orchestrations on a real engine (DESIGN §4b): the test orchestration starts three children
of a one-GPU test kind — a and b in parallel, then c — through real worker processes."""

from __future__ import annotations

from pathlib import Path

import psutil

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.states import JobState
from forge_mcp.orchestration.links import ChildLinks
from forge_mcp.settings import load_settings
from tests.jobs.conftest import AppFactory, running_with_pid, until

ORCHESTRATION = "test_orchestration"


async def children(app: ForgeApp, orchestration_id: str) -> dict[str, Job]:
    """step -> its child job, from job_links."""
    links = await ChildLinks(app.store).children(orchestration_id)
    return {link.step: await app.jobs.repo.get(link.child_id) for link in links if link.child_id}


def worker_starts(app: ForgeApp, job_id: str) -> int:
    """How many times a worker started for the job: its 'started' events, every attempt's file."""
    run = RunDir(app.workspace.runs, job_id)
    files = [run.events, *run.previous_events()]
    return sum(line.count('"type":"started"') for f in files if f.exists() for line in f.read_text().splitlines())


async def test_three_children_on_one_gpu_slot_finish_without_deadlock(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1, cpu_job_slots=1)
    handle = await app.jobs.submit(ORCHESTRATION, {"seconds": 0.3}, "tester")
    done = await app.jobs.wait(handle.job_id, 120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.executor == "server" and done.resources.gpus == 0  # held no slot while it waited
    steps = await children(app, done.id)
    assert sorted(steps) == ["a", "b", "c"]
    assert done.result == {"children": {step: job.id for step, job in steps.items()}, "slept_s": done.result["slept_s"]}
    for job in steps.values():
        assert job.state is JobState.SUCCEEDED and job.attempt == 1, job
        assert job.principal == "tester" and job.resources.gpus == 1
        assert job.parent_id is None  # "child of" is job_links, not job_resume's "repeat of"
        assert worker_starts(app, job.id) == 1
    a, b, c = steps["a"], steps["b"], steps["c"]
    # One GPU: a and b ran one after the other, and c only after both.
    first, second = sorted((a, b), key=lambda j: j.started_at or 0)
    assert (second.started_at or 0) >= (first.finished_at or 0)
    assert (c.started_at or 0) >= max(a.finished_at or 0, b.finished_at or 0)
    assert done.progress.done == 3 and done.progress.total == 3
    log = RunDir(app.workspace.runs, done.id).log.read_text()  # job_logs' text
    assert "step a: started test_sleep" in log and "orchestration succeeded" in log


async def test_cancel_cascades_to_running_and_queued_children_and_leaves_no_process(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1)
    handle = await app.jobs.submit(ORCHESTRATION, {"seconds": 600}, "tester")

    async def both_started() -> bool:
        return len(await children(app, handle.job_id)) == 2

    await until(both_started, what="steps a and b to be started")
    steps = await children(app, handle.job_id)

    async def one_running() -> bool:
        return any([(await app.jobs.repo.get(j.id)).pid for j in steps.values()])

    await until(one_running, what="a step's worker to start")
    running = next(j for j in [await app.jobs.repo.get(j.id) for j in steps.values()] if j.pid)
    running = await running_with_pid(app, running.id)
    queued = next(j for j in steps.values() if j.id != running.id)
    assert (await app.jobs.repo.get(queued.id)).state is JobState.QUEUED  # one GPU: it waits
    canceled = await app.jobs.cancel(handle.job_id)
    assert canceled.state is JobState.CANCELED and canceled.reason == "canceled"
    for job_id in (running.id, queued.id):
        child = await app.jobs.repo.get(job_id)
        assert child.state is JobState.CANCELED, child
        assert not job_processes(job_id)
    assert not psutil.pid_exists(running.pid or 0) or psutil.Process(running.pid).status() == psutil.STATUS_ZOMBIE
    assert (await app.jobs.repo.get(queued.id)).started_at is None  # never started
    assert "c" not in await children(app, handle.job_id)  # the step after them never began


async def test_a_failed_child_fails_the_orchestration_naming_the_step_and_cancels_the_rest(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1)
    # a is a test_fail (no GPU) that fails after 0.5 s; b sleeps on the GPU meanwhile.
    handle = await app.jobs.submit(ORCHESTRATION, {"seconds": 0.5, "fail_step": "a"}, "tester")
    done = await app.jobs.wait(handle.job_id, 60)
    assert done.state is JobState.FAILED and done.reason == "child_failed"
    assert "step 'a'" in (done.error or "") and "failed on purpose" in (done.error or "")
    steps = await children(app, done.id)
    assert steps["a"].state is JobState.FAILED
    assert steps["b"].state in (JobState.CANCELED, JobState.SUCCEEDED)  # canceled unless it was already done
    assert "c" not in steps
    assert not job_processes(steps["b"].id)


async def test_a_server_that_stops_leaves_it_running_and_the_next_one_re_attaches(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "ws", gpu_slots=1)
    async with ForgeApp(settings).running() as first:
        handle = await first.jobs.submit(ORCHESTRATION, {"seconds": 1.0}, "tester")

        async def a_step_runs() -> bool:
            return any(j.state is JobState.RUNNING and j.pid for j in (await children(first, handle.job_id)).values())

        await until(a_step_runs, what="a step to run")
    # A clean stop ends the coroutine, not the orchestration: still RUNNING, its workers too.
    async with ForgeApp(settings).running() as second:
        done = await second.jobs.wait(handle.job_id, 120)
        assert done.state is JobState.SUCCEEDED, done.error
        steps = await children(second, done.id)
        assert sorted(steps) == ["a", "b", "c"]
        for job in steps.values():
            assert job.state is JobState.SUCCEEDED and job.attempt == 1
            assert worker_starts(second, job.id) == 1
        # Never left RUNNING across the two servers: re-attached, not retried.
        assert [t[1] for t in await second.jobs.repo.transitions(done.id)] == ["QUEUED", "RUNNING", "SUCCEEDED"]


async def test_cancel_reaches_the_children_of_a_child_orchestration(forge: AppFactory) -> None:
    app = await forge(gpu_slots=1)
    outer = await app.jobs.submit("test_orchestration_nested", {"seconds": 600}, "tester")

    async def grandchildren_started() -> bool:
        inner = (await children(app, outer.job_id)).get("inner")
        return inner is not None and len(await children(app, inner.id)) == 2

    await until(grandchildren_started, what="the inner orchestration's steps a and b")
    inner = (await children(app, outer.job_id))["inner"]
    assert inner.executor == "server" and inner.principal == "tester"
    canceled = await app.jobs.cancel(outer.job_id)
    assert canceled.state is JobState.CANCELED
    assert (await app.jobs.repo.get(inner.id)).state is JobState.CANCELED
    for job in (await children(app, inner.id)).values():
        assert job.state is JobState.CANCELED, job
        assert not job_processes(job.id)
