"""Evaluation after training on a fresh import, through the MCP client against a live server
(issue 11): a dataset without splits is scored on all its rows (sharegpt rows read as
messages, as training reads them) and the result says so; naming a split such a dataset
lacks is refused with the way out; a prepared dataset without a test split is refused
rather than scored on its training rows."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.e2e.test_training_defaults_mcp import sharegpt_chats
from tests.e2e.test_training_mcp import greetings

pytestmark = pytest.mark.e2e
BASE = "models/tiny"
SMALL = {"limit": 3, "max_new_tokens": 4}  # a few short answers: quick on a CPU


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await client.call_tool(tool, arguments)
    assert not answer.is_error, (tool, answer.content)
    return answer.structured_content or {}


async def finished(client: Client, handle: dict[str, Any]) -> dict[str, Any]:
    job = (await call(client, "job_wait", {"job_id": handle["job_id"], "timeout_s": 300}))["job"]
    assert job["state"] == "SUCCEEDED", job
    return job


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    answer = await client.call_tool(tool, arguments)
    assert answer.is_error, (tool, answer.structured_content)
    return answer.content[0].text


async def test_a_fresh_import_is_evaluated_on_all_its_rows_and_a_missing_split_is_refused(tmp_path: Path,
                                                                                        tiny_model: Path) -> None:  # fmt: skip
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=12)
    sharegpt_chats(home / "chats.jsonl", rows=10)
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            for name in ("greet", "chats"):
                await call(client, "dataset_import", {"path": f"{name}.jsonl", "name": name})
            alone = await finished(client, await call(client, "model_evaluate", {"base_model": BASE, "dataset": "chats",
                                                                                 **SMALL}))  # fmt: skip
            trained = await finished(client, await call(client, "train_start", {"spec": {
                "base_model": BASE, "dataset": "greet", "max_steps": 2}}))  # fmt: skip
            version = (await call(client, "model_register", {"name": "greeter", "job_id": trained["id"]}))["id"]
            compared = await finished(client, await call(client, "model_compare", {"dataset": "greet", "model_a": version,
                                                                                   **SMALL}))  # fmt: skip
            stored = (await call(client, "model_get", {"model": version}))["model"]["metrics"]
            named = {tool: await refusal(client, tool, {"dataset": "chats", "split": "test", **target})
                     for tool, target in (("model_evaluate", {"base_model": BASE}), ("model_compare", {"model_a": version}))}  # fmt: skip
            # A prepared dataset with no test split: the default does not fall back to its training rows.
            await finished(client, await call(client, "dataset_prepare", {"dataset": "greet", "test_fraction": 0}))
            no_test = await refusal(client, "model_evaluate", {"base_model": BASE, "dataset": "greet"})
            kinds = sorted(job["kind"] for job in (await call(client, "job_list", {}))["jobs"])

    note = ("dataset has no splits: evaluated on 3 of its 10 rows, which a model trained on it may have seen; "
            "run dataset_prepare for a held-out test split")  # fmt: skip
    result = alone["result"]
    assert alone["arguments"]["split"] is None and alone["arguments"]["dataset_kind"] == "sharegpt"
    assert (result["split"], result["rows"], result["notes"]) == (None, 3, [note])
    # The sharegpt turns were read as messages: the reference is the gpt turn of the first row.
    assert result["examples"][0]["prompt"] == "Greet guest 0." and result["examples"][0]["reference"] == "Hello, guest 0!"
    assert result["loss"] > 0

    a, b = compared["result"]["a"], compared["result"]["b"]
    greet_note = note.replace("of its 10 rows", "of its 12 rows")
    assert (a["rows"], b["rows"], a["notes"], b["notes"]) == (3, 3, [greet_note], [greet_note])
    assert compared["result"]["summary"].startswith(f"On greet@v1 without splits (3 rows), a ({version})")
    assert stored["evaluated_on"] == "greet@v1 without splits" and stored["eval_loss"] == a["loss"]

    for text in named.values():
        assert ("split: chats@v1 has no splits (it was imported, not prepared); leave split out to evaluate on all 10 "
                "rows, or run dataset_prepare on it to make a test split") in text  # fmt: skip
    assert "split: greet@v2 has no split 'test'; its splits are train" in no_test
    assert kinds == ["compare", "dataset_prepare", "evaluate", "train"]  # nothing refused became a job
