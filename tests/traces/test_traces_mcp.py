"""The trace tools through the official MCP client, as `forge-mcp chat` and outside agents use
them: record a trace with a tool call, find it with filters, rate and correct it, read it
back as the resource forge://traces/{id}; malformed and oversized traces and an unknown id
come back as tool errors that name the field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from forge_mcp.app import ForgeApp
from forge_mcp.traces.limits import MAX_MESSAGES_BYTES
from tests.traces.test_trace_in import ANSWER, CALL, RESULT, USER

EMAIL = "jane.doe@example.com"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refusal(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    text = result.content[0].text
    assert "Traceback" not in text and "internal error" not in text
    return text.removeprefix(f"Error executing tool {tool}: ")  # the SDK's words before ours


async def test_record_list_rate_and_read_a_trace_over_mcp(app: ForgeApp) -> None:
    question = {"role": "user", "content": f"What is the weather in Paris? Reply to {EMAIL}"}
    async with Client(app.mcp_server(over_http=False)) as client:
        recorded = await call(client, "trace_record", {
            "messages": [{"role": "system", "content": "Be brief."}, question, CALL, RESULT, ANSWER],
            "model": "support-bot@v1", "latency_ms": 950, "usage": {"prompt_tokens": 80, "completion_tokens": 20},
            "thread": "conv-7", "tags": ["weather"], "metadata": {"client": "cli"}, "source": "chat",
        })  # fmt: skip
        other = await call(client, "trace_record", {"messages": [USER, ANSWER], "tags": ["smalltalk"]})
        found = await call(client, "trace_list", {"source": "chat", "tags": ["weather"], "outcome": "answered"})
        everything = await call(client, "trace_list", {})
        rated = await call(client, "trace_feedback", {"trace_id": recorded["id"], "rating": 2, "labels": ["too-long"],
                                                       "correction": "18 °C and sunny."})  # fmt: skip
        by_feedback = await call(client, "trace_list", {"has_feedback": True, "max_rating": 2})
        resource = await client.read_resource(f"forge://traces/{recorded['id']}")
    assert recorded["message_count"] == 5 and recorded["tool_call_count"] == 1
    assert recorded["pii"] == {"email": 1} and recorded["redacted"] is True
    assert (
        [t["id"] for t in found["traces"]] == [recorded["id"]] and found["total"] == 1 and found["next_cursor"] is None
    )
    summary = found["traces"][0]
    assert summary["preview"] == "What is the weather in Paris? Reply to [EMAIL]"
    assert (summary["source"], summary["model"], summary["thread"], summary["latency_ms"]) == (
        "chat",
        "support-bot@v1",
        "conv-7",
        950,
    )
    assert [t["id"] for t in everything["traces"]] == [other["id"], recorded["id"]]
    assert everything["traces"][0]["source"] == "external"  # the default source
    assert (rated["rating"], rated["labels"], rated["correction"]) == (2, ["too-long"], "18 °C and sunny.")
    assert [t["id"] for t in by_feedback["traces"]] == [recorded["id"]]
    detail = json.loads(resource.contents[0].text)
    assert detail["messages"][1]["content"] == "What is the weather in Paris? Reply to [EMAIL]"
    assert detail["messages"][2]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert detail["messages"][3] == RESULT and detail["messages"][4] == ANSWER
    assert (detail["rating"], detail["correction"], detail["corrected"]) == (2, "18 °C and sunny.", True)
    assert detail["metadata"] == {"client": "cli"} and detail["pii"] == {"email": 1}


async def test_malformed_and_oversized_traces_and_unknown_ids_are_refused_naming_the_field(app: ForgeApp) -> None:
    stray = {**RESULT, "tool_call_id": "call_9"}
    async with Client(app.mcp_server(over_http=False)) as client:
        malformed = await refusal(client, "trace_record", {"messages": [USER, CALL, stray, ANSWER]})
        not_json = await refusal(client, "trace_record", {"messages": [USER, {**CALL, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "city=Paris"}}]}, RESULT, ANSWER]})  # fmt: skip
        oversized = await refusal(
            client, "trace_record", {"messages": [{"role": "user", "content": "x" * MAX_MESSAGES_BYTES}, ANSWER]}
        )
        bad_tag = await refusal(client, "trace_record", {"messages": [USER, ANSWER], "tags": ["Not A Slug"]})
        unknown = await refusal(client, "trace_feedback", {"trace_id": "tr_0123456789abcdef", "rating": 4})
        nothing = await refusal(client, "trace_feedback", {"trace_id": "tr_0123456789abcdef"})
        listed = await call(client, "trace_list", {})
        with pytest.raises(Exception, match="trace_id: no trace 'tr_0123456789abcdef'"):
            await client.read_resource("forge://traces/tr_0123456789abcdef")
    assert malformed.startswith(
        "messages[2].tool_call_id: 'call_9' answers no earlier assistant tool call; give the id"
    )
    assert not_json.startswith("messages[1].tool_calls[0].function.arguments: not valid JSON")
    assert (
        oversized.startswith("messages: 1,048,")
        and "bytes is over the limit of 1,048,576; split the conversation" in oversized
    )
    assert bad_tag.startswith("tags[0]: 'Not A Slug' is not a slug")
    assert unknown == "trace_id: no trace 'tr_0123456789abcdef'; trace_list shows the traces you can see"
    assert nothing == unknown  # an unknown id is said first
    assert listed["total"] == 0  # nothing refused was stored
