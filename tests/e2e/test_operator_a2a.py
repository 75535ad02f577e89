"""Requests in plain language over A2A go to the chat operator (issue 15): a real server, the
a2a-sdk client, and the scripted LLM on loopback emitting real tool calls. The operator's
calls run through the services with the caller's rights, each step streams as a WORKING
update, what it produced arrives as artifacts and its answer as text; a destructive step asks
first (input-required) and the caller's answer decides; a contextId is a conversation that
outlives a restart; and every turn is a trace."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from a2a.helpers import get_data_parts, new_message, new_text_part
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client

from forge_mcp.backends.scripted_llm import Call, ScriptedLLM, ToolCalls, Turns, tool_results
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.conftest import forge_cli
from tests.polling import until

pytestmark = pytest.mark.e2e
BASE = "models/tiny"
SPEC = {"base_model": BASE, "dataset": "support@v2", "max_steps": 3}


def support_csv(path: Path, rows: int = 40) -> None:
    lines = ["instruction,output"] + [f"How do I reset password {i}?,Open settings and choose reset ({i})." for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")


def last_job(body: dict[str, Any]) -> str:
    """The job id the latest tool result carries (a JobHandle, or job_wait's job)."""
    data = tool_results(body)[-1].data
    return data["job_id"] if "job_id" in data else data["job"]["id"]


def job_wait(body: dict[str, Any]) -> ToolCalls:
    return ToolCalls([Call("job_wait", {"job_id": last_job(body), "timeout_s": 300})])


def trained(body: dict[str, Any]) -> str:
    job = tool_results(body)[-1].data["job"]
    return f"Trained {job['id']}: {job['state']} after {job['result']['steps']} steps."


def refusal(body: dict[str, Any]) -> str:
    return f"I could not do that: {tool_results(body)[-1].content}"


def remembered(body: dict[str, Any]) -> str:
    said = [m.get("content") for m in body["messages"] if m.get("role") == "user"]
    return "Your name is Ada." if "My name is Ada." in said else "I do not know your name."


PROMOTE = ToolCalls([Call("model_promote", {"model": "support-bot@v1", "stage": "production"})])
SCRIPT = {
    "import support.csv, prepare it and train": Turns([
        ToolCalls([Call("dataset_import", {"path": "support.csv", "name": "support"})]),
        ToolCalls([Call("dataset_prepare", {"dataset": "support@v1"})]),
        job_wait,
        ToolCalls([Call("train_plan", {"spec": SPEC})]),
        ToolCalls([Call("train_start", {"spec": SPEC})]),
        job_wait,
        trained,
    ]),  # fmt: skip
    "Promote support-bot@v1 to production": Turns([PROMOTE, "As you wish: support-bot@v1 stays where it is."]),
    "promote it after all": Turns([PROMOTE, "support-bot@v1 is in production now."]),
    "Train the tiny model": Turns([ToolCalls([Call("train_start", {"spec": SPEC})]), refusal]),
    "Sleep on it": Turns([
        ToolCalls([Call("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600, "steps": 600}})]),
        job_wait,
    ]),  # fmt: skip
    "My name is Ada.": "Nice to meet you, Ada.",
    "What is my name?": remembered,
}


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(SCRIPT, default="I am not sure what you mean.", model="scripted-operator") as scripted:
        yield scripted


def operator_env(llm: ScriptedLLM) -> dict[str, str]:
    return {"FORGE_OPERATOR_MODEL": "openai/scripted-operator", "FORGE_OPERATOR_API_BASE": llm.url}


def workspace(home: Path, tiny_model: Path) -> Path:
    shutil.copytree(tiny_model, home / BASE)
    support_csv(home / "support.csv")
    return home


async def ask(url: str, text: str, *, context_id: str | None = None, task_id: str | None = None,
              key: str | None = None) -> list[Any]:  # fmt: skip
    """Send `text` streaming and return every event the task sent."""
    message = new_message([new_text_part(text)], context_id=context_id, task_id=task_id, role=Role.ROLE_USER)
    async with a2a_client(url, key=key) as client:
        return [event async for event in client.send_message(SendMessageRequest(message=message))]


def statuses(events: list[Any]) -> list[Any]:
    return [e.status_update.status for e in events if e.HasField("status_update")]


def artifacts(events: list[Any]) -> list[Any]:
    return [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]


def task_of(events: list[Any]) -> tuple[str, str]:
    first = next(e for e in events if e.HasField("task") or e.HasField("status_update"))
    if first.HasField("task"):
        return first.task.id, first.task.context_id
    return first.status_update.task_id, first.status_update.context_id


async def tool(url: str, name: str, arguments: dict[str, Any], key: str | None = None) -> dict[str, Any]:
    """One MCP call to the live server (with `key` as the bearer), its structured result."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=600) as http:
        async with Client(streamable_http_client(f"{url}/mcp/", http_client=http)) as client:
            result = await client.call_tool(name, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def test_a_request_in_plain_language_imports_prepares_and_trains(tmp_path: Path, tiny_model: Path,
                                                                      llm: ScriptedLLM) -> None:  # fmt: skip
    home = workspace(tmp_path / "ws", tiny_model)
    with ServerProcess(home, env=operator_env(llm)) as server:
        card = await _card(server.url)
        events = await ask(server.url, "Please import support.csv, prepare it and train the tiny model on it.")
        listed = await tool(server.url, "trace_list", {"source": "a2a"})
        trace = await _trace(server.url, listed["traces"][0]["id"])
        jobs = await tool(server.url, "job_list", {})

    assert card["skills"][0]["id"] == "operator" and card["skills"][0]["examples"]
    updates = statuses(events)
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    started = [text.removeprefix("calling ").split("(")[0] for text in texts if text.startswith("calling ")]
    assert started == ["dataset_import", "dataset_prepare", "job_wait", "train_plan", "train_start", "job_wait"], texts
    assert any(text.startswith("job_wait: ") for text in texts)  # the training's progress, live
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED
    answer = updates[-1].message.parts[0].text
    assert answer.startswith("Trained job_") and "SUCCEEDED after 3 steps" in answer

    produced = {a.name: a for a in artifacts(events)}
    assert set(produced) >= {"dataset_import result", "dataset_prepare result", "train_start result", "job_wait result",
                             "answer"}  # fmt: skip
    imported = get_data_parts(produced["dataset_import result"].parts)[0]["result"]
    assert imported["dataset"]["id"] == "support@v1" and imported["rows_read"] == 40
    waited = [get_data_parts(a.parts)[0]["result"] for a in artifacts(events) if a.name == "job_wait result"]
    assert waited[-1]["job"]["kind"] == "train" and waited[-1]["job"]["result"]["steps"] == 3
    assert produced["answer"].parts[0].text == answer
    assert "train_plan result" not in produced  # a plan changes nothing: it is said, not delivered
    assert {job["kind"] for job in jobs["jobs"]} == {"dataset_prepare", "train"}

    # The turn is a trace: every message and tool call, in OpenAI chat format.
    assert listed["total"] == 1 and trace["outcome"] == "answered" and trace["source"] == "a2a"
    roles = [m["role"] for m in trace["messages"]]
    assert roles == ["system", "user"] + ["assistant", "tool"] * 6 + ["assistant"]
    calls = [m["tool_calls"][0]["function"]["name"] for m in trace["messages"] if m.get("tool_calls")]
    assert calls == ["dataset_import", "dataset_prepare", "job_wait", "train_plan", "train_start", "job_wait"]
    assert trace["messages"][-1]["content"] == answer and trace["tool_call_count"] == 6
    assert trace["model"] == "openai/scripted-operator" and trace["prompt_tokens"] > 0 and trace["latency_ms"] > 0
    # The model was offered the operator's tools with their schemas and saw each result.
    last = llm.completions()[-1]
    offered = {t["function"]["name"] for t in last["tools"]}
    assert {"forge_overview", "dataset_import", "train_start", "job_wait", "model_promote"} <= offered
    assert "workflow_run" not in offered  # outside the operator's toolsets
    assert json.loads(last["messages"][-1]["content"])["job"]["state"] == "SUCCEEDED"


async def test_a_destructive_step_waits_for_the_callers_answer(tmp_path: Path, tiny_model: Path,
                                                               llm: ScriptedLLM) -> None:  # fmt: skip
    home = workspace(tmp_path / "ws", tiny_model)
    with ServerProcess(home, env=operator_env(llm)) as server:
        await tool(server.url, "model_register", {"name": "support-bot", "path": BASE})
        asked = await ask(server.url, "Promote support-bot@v1 to production, please.")
        task_id, context_id = task_of(asked)
        declined = await ask(server.url, "no", context_id=context_id, task_id=task_id)
        after_no = await tool(server.url, "model_get", {"model": "support-bot@v1"})
        again = await ask(server.url, "Well, promote it after all.", context_id=context_id)
        second_task, _ = task_of(again)
        confirmed = await ask(server.url, "yes", context_id=context_id, task_id=second_task)
        after_yes = await tool(server.url, "model_get", {"model": "support-bot@v1"})
        listed = await tool(server.url, "trace_list", {"source": "a2a"})

    question = statuses(asked)[-1]
    assert question.state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert question.message.parts[0].text == (
        'Go ahead with model_promote(model="support-bot@v1", stage="production")? (yes/no)')
    assert statuses(declined)[-1].state == TaskState.TASK_STATE_COMPLETED
    assert statuses(declined)[-1].message.parts[0].text == "As you wish: support-bot@v1 stays where it is."
    assert not [s for s in statuses(declined) if s.message.parts and s.message.parts[0].text.startswith("calling")]
    assert after_no["model"]["stage"] == "registered"
    assert statuses(again)[-1].state == TaskState.TASK_STATE_INPUT_REQUIRED
    assert statuses(confirmed)[-1].message.parts[0].text == "support-bot@v1 is in production now."
    assert after_yes["model"]["stage"] == "production"
    # Two turns, each a trace that spans its question; the declined call is answered "declined" in it.
    traces = {t["id"]: t for t in listed["traces"]}
    assert len(traces) == 2 and all(t["outcome"] == "answered" for t in traces.values())


async def test_a_read_only_key_cannot_train_through_the_operator(tmp_path: Path, tiny_model: Path,
                                                                 llm: ScriptedLLM) -> None:  # fmt: skip
    home = workspace(tmp_path / "ws", tiny_model)
    keys = {}
    for name, scopes in (("reader", "read"), ("admin", "admin")):
        created = forge_cli(home, "keys", "create", "--name", name, "--scopes", scopes)
        assert created.returncode == 0, created.stderr
        keys[name] = created.stdout.strip()
    with ServerProcess(home, args=("--auth", "on"), env=operator_env(llm)) as server:
        events = await ask(server.url, "Train the tiny model on support@v2.", key=keys["reader"])
        jobs = await tool(server.url, "job_list", {}, key=keys["admin"])
        mine = await tool(server.url, "trace_list", {}, key=keys["reader"])

    updates = statuses(events)
    refused = [u.message.parts[0].text for u in updates if u.message.parts[0].text.startswith("train_start refused")]
    assert refused and "needs the 'train' scope" in refused[0]
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED
    assert "I could not do that" in updates[-1].message.parts[0].text
    assert "needs the 'train' scope" in updates[-1].message.parts[0].text
    assert jobs["jobs"] == []  # nothing ran
    assert [t["source"] for t in mine["traces"]] == ["a2a"]  # the reader's own turn, kept as the reader's


async def test_cancelling_a_task_ends_the_turn_as_a_cancelled_trace(tmp_path: Path, tiny_model: Path,
                                                                     llm: ScriptedLLM) -> None:  # fmt: skip
    from a2a.types import CancelTaskRequest

    env = {**operator_env(llm), "FORGE_TEST_JOB_KINDS": "1", "FORGE_OPERATOR_TOOLSETS": "core,jobs,testing"}
    with ServerProcess(workspace(tmp_path / "ws", tiny_model), env=env) as server:
        message = new_message([new_text_part("Sleep on it.")], role=Role.ROLE_USER)
        seen: list[Any] = []
        async with a2a_client(server.url) as client:
            async for event in client.send_message(SendMessageRequest(message=message)):
                seen.append(event)
                if any(u.message.parts and u.message.parts[0].text.startswith("job_wait: ") for u in statuses(seen)):
                    break  # the operator is waiting on the job
            task_id, _ = task_of(seen)
            canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
        found: list[dict[str, Any]] = []

        async def traced() -> bool:
            found[:] = (await tool(server.url, "trace_list", {"outcome": "cancelled"}))["traces"]
            return bool(found)

        await until(traced, what="the cancelled turn's trace")
        jobs = await tool(server.url, "job_list", {})
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert found[0]["tool_call_count"] == 2 and found[0]["source"] == "a2a"
    assert [job["state"] for job in jobs["jobs"]] == ["RUNNING"]  # a job the operator started runs on


async def test_a_context_continues_after_a_restart(tmp_path: Path, tiny_model: Path, llm: ScriptedLLM) -> None:
    home = workspace(tmp_path / "ws", tiny_model)
    with ServerProcess(home, env=operator_env(llm)) as first:
        hello = await ask(first.url, "My name is Ada.")
    _, context_id = task_of(hello)
    with ServerProcess(home, env=operator_env(llm)) as second:
        later = await ask(second.url, "What is my name?", context_id=context_id)
        stranger = await ask(second.url, "What is my name?")
    assert statuses(later)[-1].message.parts[0].text == "Your name is Ada."
    assert statuses(stranger)[-1].message.parts[0].text == "I do not know your name."


async def test_without_an_operator_model_free_text_gets_the_way_to_set_one(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "ws") as server:
        events = await ask(server.url, "Train something for me.")
    [reply] = [e.message for e in events if e.HasField("message")]
    assert "set operator_model" in reply.parts[0].text and "FORGE_OPERATOR_MODEL" in reply.parts[0].text


async def _card(url: str) -> dict[str, Any]:
    import httpx

    async with httpx.AsyncClient() as http:
        return (await http.get(f"{url}/.well-known/agent-card.json")).json()


async def _trace(url: str, trace_id: str) -> dict[str, Any]:
    async with Client(f"{url}/mcp/") as client:
        read = await client.read_resource(f"forge://traces/{trace_id}")
    return json.loads(read.contents[0].text)
