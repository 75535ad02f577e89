"""What the engine writes into job.json at launch: the worker's whole brief. A job that
job_resume repeats twice carries the chain of runs it repeats (nearest first) as data, so
its worker finds their checkpoints without reading their folders' specs or the store."""

from __future__ import annotations

from forge_mcp.jobs.spec import JobSpec
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from tests.jobs.conftest import AppFactory

OWNER = Principal("alice", frozenset())
FAIL = {"message": "stop here"}


async def test_job_json_carries_the_workspace_and_the_runs_a_resumed_job_repeats(forge: AppFactory) -> None:
    app = await forge()
    first = await app.jobs.submit("test_fail", FAIL, OWNER.name)
    assert (await app.jobs.wait(first.job_id, 60)).state is JobState.FAILED
    second = await app.jobs.resume(first.job_id, OWNER)
    assert (await app.jobs.wait(second.job_id, 60)).state is JobState.FAILED
    third = await app.jobs.resume(second.job_id, OWNER)
    assert (await app.jobs.wait(third.job_id, 60)).state is JobState.FAILED
    spec = JobSpec.read(app.workspace.run(third.job_id))
    assert (spec.job_id, spec.kind, spec.attempt) == (third.job_id, "test_fail", 1)
    assert spec.arguments == {**FAIL, "unexpected": False, "after_s": 0.0}  # as stored: the arguments model's dump
    assert spec.repeats == (second.job_id, first.job_id) and spec.parent_id == second.job_id
    assert spec.heartbeat_s == app.jobs.limits.heartbeat_s
    assert spec.workspace.root == app.workspace.root and spec.workspace.import_roots == app.workspace.import_roots
    assert JobSpec.read(app.workspace.run(first.job_id)).repeats == ()
