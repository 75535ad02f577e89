"""A trace keeps no secret that a tool handed over by name: serve_start's result carries its
service's `api_key` (and again in its example request), and a model may repeat it. Shapes
the PII detector cannot know (a random 32-character key) are found by the field's name and
masked everywhere in the trace, arguments included."""

from __future__ import annotations

import json

from forge_mcp.traces.models import TraceIn
from forge_mcp.traces.redaction import redact_messages

KEY = "Zq7-randomLooking_Key0123456789abcd"


def test_a_key_named_in_a_tool_result_is_masked_wherever_it_appears() -> None:
    served = {"url": "http://localhost:8001/v1", "api_key": KEY, "example": f"curl -H 'Authorization: Bearer {KEY}'"}
    trace = TraceIn.checked({"messages": [
        {"role": "user", "content": "Serve bot@v1 and give me the key"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "serve_start", "arguments": '{"model": "bot@v1"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": json.dumps(served)},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c2", "type": "function", "function": {"name": "model_generate", "arguments": json.dumps({"prompt": KEY})}}]},
        {"role": "tool", "tool_call_id": "c2", "content": "{}"},
        {"role": "assistant", "content": f"Done. Your key is {KEY}."},
    ]})  # fmt: skip
    messages, found = redact_messages(trace.messages)
    stored = json.dumps(messages)
    assert KEY not in stored
    assert json.loads(messages[2]["content"])["api_key"] == "[SECRET]"
    assert json.loads(messages[3]["tool_calls"][0]["function"]["arguments"]) == {"prompt": "[SECRET]"}
    assert messages[-1]["content"] == "Done. Your key is [SECRET]."
    assert found["secret"] == 4


def test_short_or_unnamed_values_are_left_alone() -> None:
    trace = TraceIn.checked({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "x", "arguments": '{"token": "none"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"model": "bot@v1", "name": "none"}'},
        {"role": "assistant", "content": "none of that"},
    ]})  # fmt: skip
    messages, found = redact_messages(trace.messages)
    assert messages[-1]["content"] == "none of that" and not found
