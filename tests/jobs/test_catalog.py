"""The job-kind catalog: one allowlist of typed kinds; arguments checked once at submission
(the refusal names the field), results checked before anything stores them, publish steps
typed and injected, the test kinds only where the test setting is on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from forge_mcp.app import ForgeApp
from forge_mcp.errors import ForgeError, InvalidArguments, NotFound
from forge_mcp.jobs.catalog import KINDS, TEST_KINDS, JobCatalog, offers_test_kinds
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.publishing import Publisher
from forge_mcp.jobs.states import JobState
from forge_mcp.jobs.testing_kinds import SLEEP, SleepArguments, SleepResult
from forge_mcp.settings import load_settings
from tests.jobs.conftest import SLEEP as SLEEP_KIND
from tests.jobs.conftest import AppFactory


def test_every_entry_loads_the_kind_it_names() -> None:
    kinds = JobCatalog(test_kinds=True).load_all()
    assert sorted(kinds) == sorted(entry.name for entry in KINDS + TEST_KINDS)
    assert all(isinstance(kind, JobKind) and kind.name == name for name, kind in kinds.items())
    assert kinds["train"].checkpoints and not kinds["evaluate"].checkpoints
    assert [name for name, kind in kinds.items() if kind.service] == ["serve"]
    assert all(entry.module.startswith("forge_mcp.") and not entry.module.startswith("forge_mcp.tools") for entry in KINDS)


def test_the_test_kinds_are_offered_only_with_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGE_TEST_JOB_KINDS")
    assert not offers_test_kinds() and "test_sleep" not in JobCatalog.for_worker().names
    with pytest.raises(NotFound, match="'test_sleep' is not in this installation's catalog"):
        JobCatalog().load("test_sleep")
    production = ForgeApp(load_settings(home=tmp_path / "ws"))
    assert not any(name.startswith("test_") for name in production.jobs.kinds)
    assert "testing" not in {toolset.name for toolset in production.registry.toolsets}
    monkeypatch.setenv("FORGE_TEST_JOB_KINDS", "1")
    assert JobCatalog.for_worker().load("test_sleep") is SLEEP


async def test_submission_checks_arguments_once_and_names_the_field(forge: AppFactory) -> None:
    app = await forge()
    with pytest.raises(InvalidArguments, match="'seconds': Input should be a valid number"):
        await app.jobs.submit(SLEEP_KIND, {"seconds": "soon"}, "tester")
    with pytest.raises(InvalidArguments, match="'sleep_for' is not an argument of job kind test_sleep; remove it"):
        await app.jobs.submit(SLEEP_KIND, {"seconds": 1, "sleep_for": 2}, "tester")
    with pytest.raises(InvalidArguments, match="'seconds' is required"):
        await app.jobs.submit(SLEEP_KIND, {}, "tester")
    with pytest.raises(NotFound, match="job kind 'nope'"):
        await app.jobs.submit("nope", {}, "tester")
    assert await app.jobs.repo.list(limit=10) == []
    # What is stored is the model's dump, defaults included: the worker parses exactly that.
    handle = await app.jobs.submit(SLEEP_KIND, {"seconds": 0.1}, "tester")
    job = await app.jobs.wait(handle.job_id, 60)
    assert job.arguments == {"seconds": 0.1, "steps": 10, "gpus": 0, "memory_gb": 0.0}
    assert job.state is JobState.SUCCEEDED and SleepResult(**job.result).slept_s >= 0.1


def a_job(kind: str, arguments: dict[str, Any]) -> Job:
    return Job.model_validate({"id": "job_0123456789ab", "kind": kind, "state": "RUNNING", "arguments": arguments,
                               "principal": "tester", "priority": 0, "resources": {}, "attempt": 1, "max_attempts": 1,
                               "progress": {}, "created_at": 0.0})  # fmt: skip


class Published(SleepResult):
    published_as: str


class RecordingStep:
    """A publish step as the composition root builds them: what it needs comes in the constructor."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, BaseModel, BaseModel]] = []

    async def __call__(self, job: Job, arguments: SleepArguments, result: SleepResult) -> Published:
        self.calls.append((job.id, arguments, result))
        return Published(**result.model_dump(), published_as=f"{self.name}/{arguments.seconds}")


async def test_publish_gets_typed_arguments_and_result_and_a_bad_result_is_refused() -> None:
    step = RecordingStep("shelf")
    publisher = Publisher({"test_sleep": SLEEP}, {"test_sleep": step})
    job = a_job("test_sleep", {"seconds": 2.0})
    stored = await publisher.publish(job, {"slept_s": 2.0, "attempt": 1})
    assert stored == {"slept_s": 2.0, "attempt": 1, "published_as": "shelf/2.0"}
    [(job_id, arguments, result)] = step.calls
    assert (job_id, type(arguments), type(result)) == (job.id, SleepArguments, SleepResult)
    with pytest.raises(ForgeError, match="the job's result does not match its kind's: 'slept_s' is required"):
        await publisher.publish(job, {"attempt": 1})
    assert len(step.calls) == 1  # a result that does not match never reaches the step
    with pytest.raises(ValueError, match="publish steps for kinds that are not in the catalog: nope"):
        Publisher({"test_sleep": SLEEP}, {"nope": step})
