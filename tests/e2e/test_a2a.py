"""The a2a-sdk client against `forge-mcp serve`: the card, tool calls as tasks (plain and
streaming, JSON-RPC and REST), GetTask, ListTasks, free text, and tasks that survive a restart."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from a2a.client import create_client
from a2a.helpers import get_data_parts, new_data_part, new_message, new_text_part
from a2a.types import GetTaskRequest, ListTasksRequest, Role, SendMessageRequest, TaskState
from a2a.utils.constants import TransportProtocol

from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.conftest import ALL_TOOLS

pytestmark = pytest.mark.e2e


def tool_message(tool: str, arguments: dict | None = None):  # noqa: ANN201
    payload = {"tool": tool} if arguments is None else {"tool": tool, "arguments": arguments}
    return new_message([new_data_part(payload)], role=Role.ROLE_USER)


async def send(url: str, message, *, streaming: bool, binding: str = TransportProtocol.JSONRPC) -> list:  # noqa: ANN001
    async with a2a_client(url, streaming=streaming, supported_protocol_bindings=[binding]) as client:
        return [event async for event in client.send_message(SendMessageRequest(message=message))]


def test_agent_card_lists_every_tool_as_a_skill(server: ServerProcess) -> None:
    card = httpx.get(server.url + "/.well-known/agent-card.json").json()
    assert card["name"] == "forge-mcp"
    assert {s["id"] for s in card["skills"]} == ALL_TOOLS
    [benchmark] = [s for s in card["skills"] if s["id"] == "system_benchmark"]
    assert "long-running" in benchmark["tags"] and "scope:train" in benchmark["tags"]
    bindings = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}
    assert bindings == {"JSONRPC": f"{server.url}/a2a", "HTTP+JSON": f"{server.url}/a2a/rest"}
    assert card["capabilities"]["streaming"] is True
    assert "securitySchemes" not in card  # loopback without auth


@pytest.mark.parametrize("binding", [TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON])
async def test_send_message_runs_the_tool_as_a_completed_task(server: ServerProcess, binding: str) -> None:
    [event] = await send(server.url, tool_message("forge_overview", {}), streaming=False, binding=binding)
    task = event.task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    [result] = get_data_parts(task.artifacts[0].parts)
    assert result["name"] == "forge-mcp" and result["hardware"]["cpu"]["logical_cores"] >= 1


async def test_streaming_sends_status_updates_and_the_artifact(server: ServerProcess) -> None:
    events = await send(server.url, tool_message("system_status", {"sample_seconds": 0.1}), streaming=True)
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert states == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert 0 <= get_data_parts(artifact.parts)[0]["memory_percent"] <= 100


async def test_get_task_and_list_tasks(server: ServerProcess) -> None:
    [event] = await send(server.url, tool_message("system_status", {"sample_seconds": 0.05}), streaming=False)
    client = await create_client(server.url)
    try:
        fetched = await client.get_task(GetTaskRequest(id=event.task.id))
        listed = await client.list_tasks(ListTasksRequest())
    finally:
        await client.close()
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert len(fetched.artifacts) == 1
    assert event.task.id in {t.id for t in listed.tasks}


async def test_bad_arguments_fail_the_task_with_a_message_naming_the_field(server: ServerProcess) -> None:
    [event] = await send(server.url, tool_message("system_status", {"sample_seconds": "x"}), streaming=False)
    assert event.task.status.state == TaskState.TASK_STATE_FAILED
    text = event.task.status.message.parts[0].text
    assert "'sample_seconds'" in text and "Traceback" not in text


async def test_unknown_tool_fails_the_task_and_lists_the_tools(server: ServerProcess) -> None:
    [event] = await send(server.url, tool_message("model_delete_all"), streaming=False)
    assert event.task.status.state == TaskState.TASK_STATE_FAILED
    assert "unknown tool 'model_delete_all'" in event.task.status.message.parts[0].text


@pytest.mark.parametrize("streaming", [False, True])
async def test_free_text_gets_instructions_for_a_structured_request(server: ServerProcess, streaming: bool) -> None:
    message = new_message([new_text_part("please fine-tune llama for me")], role=Role.ROLE_USER)
    [event] = await send(server.url, message, streaming=streaming)
    text = event.message.parts[0].text
    assert '{"tool": "<tool name>", "arguments": {...}}' in text
    assert "forge_overview" in text and "system_status" in text


async def test_malformed_data_part_is_explained(server: ServerProcess) -> None:
    message = new_message([new_data_part({"tool": 42})], role=Role.ROLE_USER)
    [event] = await send(server.url, message, streaming=False)
    assert "'tool' must be the name of a tool" in event.message.parts[0].text


async def test_tasks_persist_in_the_workspace_database(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with ServerProcess(home) as first:
        [event] = await send(first.url, tool_message("forge_overview", {}), streaming=False)
    with ServerProcess(home) as second:
        client = await create_client(second.url)
        try:
            fetched = await client.get_task(GetTaskRequest(id=event.task.id))
        finally:
            await client.close()
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert get_data_parts(fetched.artifacts[0].parts)[0]["name"] == "forge-mcp"
