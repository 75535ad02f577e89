"""An agent's first training calls through MCP on a live server (issue 11): a freshly
imported dataset, no splits, and only base_model and dataset in the spec. The plan fits
max_length to the tiny model's 512 positions, trains on every row (or holds out a seeded
tenth when eval_split is asked for, the same rows on the hf and mlx backends), and says
so; what the caller set explicitly is still refused with the field and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.e2e.test_training_mcp import greetings

pytestmark = pytest.mark.e2e
BASE = "models/tiny"


def sharegpt_chats(path: Path, rows: int = 30) -> None:
    with path.open("w") as f:
        for i in range(rows):
            turns = [{"from": "human", "value": f"Greet guest {i}."}, {"from": "gpt", "value": f"Hello, guest {i}!"}]
            f.write(json.dumps({"id": f"chat-{i}", "conversations": turns}) + "\n")


async def finished(client: Client, spec: dict) -> dict:
    started = await client.call_tool("train_start", {"spec": spec})
    assert not started.is_error, started.content
    waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job
    return job


async def test_a_fresh_import_trains_with_only_base_model_and_dataset(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=40)
    sharegpt_chats(home / "chats.jsonl")
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            for name in ("greet", "chats"):
                imported = await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
                assert not imported.is_error, imported.content
            plan = await client.call_tool("train_plan", {"spec": {"base_model": BASE, "dataset": "greet"}})
            assert not plan.is_error, plan.content
            job = await finished(client, {"base_model": BASE, "dataset": "greet", "max_steps": 3})
            logs = await client.call_tool("job_logs", {"job_id": job["id"]})
            held_plan = await client.call_tool("train_plan", {"spec": {"base_model": BASE, "dataset": "chats", "eval_split": "test"}})
            assert not held_plan.is_error, held_plan.content
            held = {backend: await finished(client, {"base_model": BASE, "dataset": "chats", "eval_split": "test",
                                                     "max_steps": 2, "backend": backend})
                    for backend in ("hf", "mlx")}  # fmt: skip
            split_refused = await client.call_tool("train_plan", {"spec": {"base_model": BASE, "dataset": "chats", "split": "train"}})
            too_long = await client.call_tool("train_start", {"spec": {"base_model": BASE, "dataset": "chats", "max_length": 4096}})
    chosen = plan.structured_content
    assert chosen["spec"]["max_length"] == 512 and chosen["spec"]["split"] is None
    assert (chosen["train_rows"], chosen["eval_rows"], chosen["holdout_rows"]) == (40, None, 0)
    assert chosen["notes"] == ["max_length set to 512, the model's limit (the default 1024 is over it)",
                               "dataset has no splits: training on all 40 rows"]  # fmt: skip
    assert job["result"]["train_rows"] == 40 and job["result"]["steps"] == 3
    assert "dataset has no splits: training on all 40 rows" in logs.structured_content["text"]

    held_out = held_plan.structured_content
    assert (held_out["train_rows"], held_out["eval_rows"], held_out["holdout_rows"]) == (27, 3, 3)
    assert held_out["dataset_kind"] == "sharegpt" and held_out["notes"][-1] == (
        "dataset has no splits: holding out 3 of 30 rows (seed 0) for evaluation as 'test', training on the other 27")
    for backend, run in held.items():
        result = run["result"]
        assert result["train_rows"] == 27, (backend, result)
        assert result["base_eval_loss"] is not None and result["final_eval_loss"] is not None, (backend, result)

    assert split_refused.is_error and (
        "split: chats@v1 has no splits (it was imported, not prepared); leave split out to train on all 30 rows, "
        "or run dataset_prepare") in split_refused.content[0].text  # fmt: skip
    assert too_long.is_error and "max_length: 4096 is over the model's limit of 512 positions" in too_long.content[0].text
