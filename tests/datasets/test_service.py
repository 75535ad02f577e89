"""DatasetService called in-process, as the operator and workflows will call it: every check of
a prepare happens before anything is queued, and the job is the caller's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.security.principal import Principal

ALICE = Principal("alice", frozenset({"train"}))


async def imported(app: ForgeApp) -> str:
    home = Path(app.settings.home)
    rows = [{"instruction": f"question {i}", "output": f"answer {i}", "topic": "a" if i % 2 else "b"} for i in range(20)]
    (home / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = await app.services.datasets.import_("qa.jsonl", "qa", format="auto", kind="auto")
    assert result.dataset.kind == "alpaca"
    return result.dataset.id


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_length": 64}, "max_length and tokenizer_path: give both"),
        ({"split_method": "stratified"}, "split_column: a stratified split needs the column"),
        ({"split_column": "nope"}, "split_column: qa@v1 has no column 'nope'; its columns are"),
        ({"test_fraction": 0.5, "validation_fraction": 0.5}, "must leave rows for training"),
        ({"output_name": "Bad Name"}, "name: use 1-64 lowercase letters"),
    ],
)
async def test_a_prepare_is_refused_before_anything_is_queued(app: ForgeApp, options: dict, message: str) -> None:
    dataset = await imported(app)
    with pytest.raises(InvalidArguments, match=message):
        await app.services.datasets.prepare(ALICE, dataset, **options)
    assert await app.jobs.repo.list(limit=10) == []


async def test_a_prepare_is_queued_as_the_callers_job(app: ForgeApp) -> None:
    dataset = await imported(app)
    handle = await app.services.datasets.prepare(ALICE, "qa", split_method="stratified", split_column="topic", seed=7)
    job = await app.jobs.repo.get(handle.job_id)
    assert (job.principal, job.kind) == ("alice", "dataset_prepare")
    assert (job.arguments["dataset_id"], job.arguments["output_name"]) == (dataset, "qa")
    assert job.arguments["options"]["split_column"] == "topic" and job.arguments["options"]["seed"] == 7


async def test_lookups_go_through_the_service(app: ForgeApp) -> None:
    dataset = await imported(app)
    assert [d.id for d in (await app.services.datasets.list()).datasets] == [dataset]
    assert (await app.services.datasets.get("qa")).id == dataset
    assert await app.services.datasets.count() == 1
    with pytest.raises(NotFound):
        await app.services.datasets.get("missing")
    inspection = await app.services.datasets.inspect("qa", samples=1)
    assert inspection.histogram is None
