"""The registry and evaluation services called in-process, as the operator and workflows will
call them: the caller's principal decides whose jobs they reach and is recorded on what they
move, and every refusal comes before anything is queued."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.models.evaluation_service import ScoringRequest
from forge_mcp.security.principal import Principal
from tests.models.test_registry import adapter_folder

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))


def compare_arguments(home_relative_model: str) -> dict[str, object]:
    target = {"label": home_relative_model, "model_path": home_relative_model, "adapter_path": None, "model_id": None}
    return {"a": target, "b": {**target, "label": "other", "model_path": "models/other"}, "dataset_path": "datasets/chat/v1",
            "dataset_id": "chat@v1", "split": "test", "limit": 5, "decoding": {"max_new_tokens": 8, "do_sample": False}}  # fmt: skip


async def test_moves_are_recorded_as_the_callers(app: ForgeApp) -> None:
    models = app.services.models
    version = await models.register(ALICE, "greeter", path=adapter_folder(app.settings.home))
    await models.promote(BOB, version.id, "staging", None)
    archived = await models.archive(ALICE, version.id, accept)
    assert archived.stage == "archived"
    detail = await models.detail("greeter")
    assert [(h["to_stage"], h["principal"]) for h in detail.history] == [
        ("registered", "alice"), ("staging", "bob"), ("archived", "alice")]  # fmt: skip
    assert [m.id for m in (await models.list("greeter")).models] == ["greeter@v1"]


async def accept(question: str) -> bool:
    return True


async def test_a_declined_archive_moves_nothing(app: ForgeApp) -> None:
    version = await app.services.models.register(ALICE, "greeter", path=adapter_folder(app.settings.home))

    async def decline(question: str) -> bool:
        assert question.startswith("Archive greeter@v1 for good?")
        return False

    with pytest.raises(Conflict, match="confirmation: archiving greeter@v1 was declined; nothing moved"):
        await app.services.models.archive(ALICE, version.id, decline)
    assert (await app.services.models.get(version.id)).stage == "registered"


async def test_someone_elses_job_cannot_be_registered_and_looks_missing(app: ForgeApp) -> None:
    handle = await app.jobs.submit("compare", compare_arguments("models/tiny"), "bob")
    with pytest.raises(NotFound, match=f"job_id: no job '{handle.job_id}'"):
        await app.services.models.register(ALICE, "greeter", job_id=handle.job_id)
    with pytest.raises(InvalidArguments, match="is a compare job in state QUEUED; give a training job that SUCCEEDED"):
        await app.services.models.register(BOB, "greeter", job_id=handle.job_id)


async def test_a_comparison_report_is_its_owners_and_an_admins(app: ForgeApp) -> None:
    handle = await app.jobs.submit("compare", compare_arguments("models/tiny"), "bob")
    with pytest.raises(NotFound, match="job_id: no job"):
        await app.services.evaluation.comparison_report(ALICE, handle.job_id)
    for caller in (BOB, ADMIN):
        with pytest.raises(Conflict, match=f"job_id: {handle.job_id} is QUEUED; wait for it with job_wait"):
            await app.services.evaluation.comparison_report(caller, handle.job_id)


@pytest.mark.parametrize(("call", "message"), [
    (lambda ev: ev.evaluate(ALICE, ScoringRequest("chat"), model="greeter", base_model="models/tiny"),
     "model or base_model: give exactly one"),
    (lambda ev: ev.evaluate(ALICE, ScoringRequest("chat")), "model or base_model: give exactly one"),
    (lambda ev: ev.compare(ALICE, ScoringRequest("chat"), "greeter", model_b="base", base_model="models/tiny"),
     "model_b or base_model: give one"),
])  # fmt: skip
async def test_evaluation_refuses_before_anything_is_queued(app: ForgeApp, call, message: str) -> None:  # noqa: ANN001
    pytest.importorskip("torch")  # the train extra, which both check first
    with pytest.raises(InvalidArguments, match=message):
        await call(app.services.evaluation)
    assert await app.jobs.list(ADMIN) == []
