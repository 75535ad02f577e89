"""The flywheel through the official MCP client, in process with the engine started, as an agent
drives it: record tool-using traces with trace_record, rate and correct some with
trace_feedback, have the scripted judge on loopback grade the rest with trace_judge, then
traces_to_dataset, job_wait and the datasets it made — and the SFT dataset trains: train_plan
passes on the tiny model, and a short train_start learns from chats that call tools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from mcp import Client

from forge_mcp.app import ForgeApp
from forge_mcp.backends.scripted_llm import ScriptedLLM
from tests.flywheel.traces import SYSTEM

COLOURS = {"apple": "red", "sky": "blue", "grass": "green", "snow": "white", "coal": "black", "plum": "purple"}


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


def turn(thing: str, answer: str) -> list[dict[str, Any]]:
    call_id = f"call_{thing}"
    return [SYSTEM, {"role": "user", "content": f"What colour is the {thing}?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "lookup_colour", "arguments": json.dumps({"thing": thing})}}]},
            {"role": "tool", "tool_call_id": call_id, "content": COLOURS[thing]},
            {"role": "assistant", "content": answer}]  # fmt: skip


async def test_traces_become_a_dataset_that_trains_through_mcp(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    home = Path(app.settings.home)
    shutil.copytree(tiny_model, home / "models" / "tiny")
    script = {"colour is the snow": '{"score": 5, "reason": "matches the tool"}',
              "colour is the coal": '{"score": 1, "reason": "contradicts the tool"}'}  # fmt: skip
    with ScriptedLLM(script, default='{"score": 3, "reason": "unclear"}') as judge:
        async with Client(app.mcp_server(over_http=False)) as client:
            ids = {}
            for thing in COLOURS:
                answer = f"The {thing} is {COLOURS[thing] if thing != 'coal' else 'pink'}."
                ids[thing] = (await call(client, "trace_record", {"messages": turn(thing, answer), "tags": ["colours"],
                                                                  "source": "chat", "model": "tiny@v1"}))["id"]  # fmt: skip
            for thing, rating in (("apple", 5), ("sky", 4), ("grass", 2)):
                await call(client, "trace_feedback", {"trace_id": ids[thing], "rating": rating})
            await call(client, "trace_feedback", {"trace_id": ids["plum"], "correction": "The plum is dark purple."})
            grading = await call(client, "trace_judge", {"judge_url": judge.url, "judge_model": "judge-1", "tags": ["colours"]})
            graded = await call(client, "job_wait", {"job_id": grading["job_id"], "timeout_s": 60})
            by_judge = await call(client, "trace_list", {"min_judge_rating": 4})
            started = await call(client, "traces_to_dataset", {"name": "colours", "tags": ["colours"], "judge_min_score": 4,
                                                                "eval_fraction": 0.25})  # fmt: skip
            built = await call(client, "job_wait", {"job_id": started["job_id"], "timeout_s": 180})
            listed = await call(client, "dataset_list", {})
            spec = {"base_model": "models/tiny", "dataset": "colours", "max_steps": 2, "logging_steps": 1}
            plan = await call(client, "train_plan", {"recipe": "sft-lora-tiny", "spec": spec})
            dpo_plan = await call(client, "train_plan", {"spec": {"base_model": "models/tiny", "dataset": "colours-pairs",
                                                                  "method": "dpo", "max_steps": 2}})  # fmt: skip
            training = await call(client, "train_start", {"recipe": "sft-lora-tiny", "spec": spec})
            trained = await call(client, "job_wait", {"job_id": training["job_id"], "timeout_s": 300})

    judged = graded["job"]
    assert judged["state"] == "SUCCEEDED", judged["error"]
    # snow, coal and plum were unrated (plum has only a correction); the judge saw three answers.
    assert judged["result"]["graded"] == 3 and judged["result"]["ratings"] == {"5": 1, "1": 1, "3": 1}
    assert [t["id"] for t in by_judge["traces"]] == [ids["snow"]] and by_judge["traces"][0]["rating"] is None
    job = built["job"]
    assert job["state"] == "SUCCEEDED", job["error"]
    report = job["result"]
    assert report["traces_selected"] == 6 and [d["id"] for d in report["datasets"]] == ["colours@v1", "colours-pairs@v1"]
    # SFT: apple 5, sky 4, snow (judge 5), plum (corrected); grass rated 2, coal graded 1.
    assert report["sft"]["rows"] == 4 and report["sft"]["dropped"]["below_threshold"] == 2
    assert report["sft"]["splits"] == {"train": 3, "test": 1}
    assert report["dpo"]["pairs"] == {"correction": 1, "ratings": 0}  # each colour is its own prompt
    assert {d["id"] for d in listed["datasets"]} == {"colours@v1", "colours-pairs@v1"}
    sft = next(d for d in report["datasets"] if d["id"] == "colours@v1")
    assert set(sft["source"]["traces"]) == {ids[t] for t in ("apple", "sky", "snow", "plum")}
    assert sft["source"]["filters"] == {"tags": ["colours"]}
    rows = pq.read_table(home / sft["path"] / "data.parquet").to_pylist()
    assert all(json.loads(r["row"])["messages"][2]["tool_calls"][0]["function"]["name"] == "lookup_colour" for r in rows)
    assert plan["dataset_id"] == "colours@v1" and plan["train_rows"] == 3 and plan["spec"]["split"] == "train"
    assert dpo_plan["dataset_id"] == "colours-pairs@v1" and dpo_plan["spec"]["method"] == "dpo"
    assert trained["job"]["state"] == "SUCCEEDED", trained["job"]["error"]
    assert trained["job"]["result"]["steps"] == 2 and trained["job"]["result"]["final_loss"] is not None
