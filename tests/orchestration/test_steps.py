"""ctx.start_child's exactly-once rule on a real engine: a step's link is written before its
child is submitted under the link's key, so a coroutine run again — after a crash before the
link learnt its child, or after one — gets the step's child back instead of a second one."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import Conflict
from forge_mcp.jobs.models import Job
from forge_mcp.orchestration.context import Child, ChildNotStarted, OrchestrationContext
from forge_mcp.orchestration.links import ChildLinks
from tests.jobs.conftest import LONG, QUICK, SLEEP, AppFactory


async def context(app: ForgeApp, parent: Job) -> tuple[OrchestrationContext, list[str]]:
    lines: list[str] = []
    ctx = OrchestrationContext(parent, app.jobs, app.jobs.repo, ChildLinks(app.store), app.job_bus,
                               lambda type, payload: None, lines.append, app.workspace.run(parent.id))  # fmt: skip
    return ctx, lines


async def keyed(app: ForgeApp, key: str) -> list[Job]:
    return [j for j in await app.jobs.repo.list(limit=1000) if j.idempotency_key == key]


async def test_a_crash_between_the_submission_and_the_link_still_gives_the_step_one_child(forge: AppFactory) -> None:
    app = await forge()
    # Any job row can stand for the orchestration here: links only need its id and owner.
    parent = await app.jobs.repo.get((await app.jobs.submit(SLEEP, LONG, "tester")).job_id)
    links = ChildLinks(app.store)
    link = await links.add(parent.id, "x", f"orchestration/{parent.id}/x")
    lost = await app.jobs.submit(SLEEP, QUICK, "tester", idempotency_key=link.idempotency_key)  # then the crash
    assert (await links.get(parent.id, "x")).child_id is None
    assert [c.child_id for c in await links.children(parent.id)] == [lost.job_id]  # found by its key meanwhile

    ctx, lines = await context(app, parent)
    assert await ctx.existing_child("x") == Child(step="x", job_id=lost.job_id)  # what a restarted sweep asks first
    assert await ctx.existing_child("y") is None
    child = await ctx.start_child(SLEEP, QUICK, step="x")
    assert child.job_id == lost.job_id and lines == [f"step x: found test_sleep job {lost.job_id}"]
    again = await ctx.start_child(SLEEP, QUICK, step="x")
    assert again == child and lines[-1] == f"step x: re-attached to job {lost.job_id}"
    assert [j.id for j in await keyed(app, link.idempotency_key)] == [lost.job_id]
    assert (await links.get(parent.id, "x")).child_id == lost.job_id
    assert (await links.parent_of(lost.job_id)).parent_id == parent.id


async def test_a_step_runs_as_the_orchestrations_owner_and_keeps_its_kind(forge: AppFactory) -> None:
    app = await forge()
    parent = await app.jobs.repo.get((await app.jobs.submit(SLEEP, LONG, "alice")).job_id)
    ctx, _ = await context(app, parent)
    child = await app.jobs.repo.get((await ctx.start_child(SLEEP, QUICK, step="first")).job_id)
    assert child.principal == "alice" and child.parent_id is None
    with pytest.raises(Conflict, match="already ran a test_sleep job"):
        await ctx.start_child("test_events", {}, step="first")


async def test_a_step_refused_at_submission_names_the_step(forge: AppFactory) -> None:
    app = await forge(gpu_slots=0)
    parent = await app.jobs.repo.get((await app.jobs.submit(SLEEP, LONG, "tester")).job_id)
    ctx, _ = await context(app, parent)
    with pytest.raises(ChildNotStarted, match="step 'big' could not start its test_sleep job: this job needs 1 GPU"):
        await ctx.start_child(SLEEP, {"seconds": 1, "gpus": 1}, step="big")


async def test_an_orchestration_whose_step_cannot_start_fails_naming_it(forge: AppFactory) -> None:
    app = await forge(gpu_slots=0)  # the test orchestration's steps each need a GPU
    done = await app.jobs.wait((await app.jobs.submit("test_orchestration", {"seconds": 0.1}, "tester")).job_id, 30)
    assert done.state.value == "FAILED" and done.reason == "child_not_started"
    assert (done.error or "").startswith("step 'a' could not start its test_sleep job")
