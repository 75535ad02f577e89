"""The trace input format: OpenAI chat messages with tool calls. A malformed trace is refused
with one message that names the message and field at fault and says what to do; a valid one
comes through in the shape the flywheel will read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.traces.limits import MAX_MESSAGES, MAX_MESSAGES_BYTES
from forge_mcp.traces.messages import json_size
from forge_mcp.traces.models import TraceIn

USER = {"role": "user", "content": "What is the weather in Paris?"}
CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}  # fmt: skip
RESULT = {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}
ANSWER = {"role": "assistant", "content": "It is 18 °C and sunny in Paris."}


def with_arguments(arguments: str, call_id: str = "call_1") -> dict[str, Any]:
    return {
        **CALL,
        "tool_calls": [
            {**CALL["tool_calls"][0], "id": call_id, "function": {"name": "weather", "arguments": arguments}}
        ],
    }


def oversized() -> list[dict[str, Any]]:
    return [{"role": "user", "content": "x" * MAX_MESSAGES_BYTES}, ANSWER]


# (what is wrong, the trace, how the message starts: the field first)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("a role chat has not", {"messages": [USER, {"role": "robot", "content": "beep"}, ANSWER]},
     "messages[1].role: Input should be 'system', 'user', 'assistant' or 'tool'"),
    ("a tool result that answers no call", {"messages": [USER, CALL, {**RESULT, "tool_call_id": "call_9"}, ANSWER]},
     "messages[2].tool_call_id: 'call_9' answers no earlier assistant tool call; give the id of a tool call in messages before it"),
    ("a tool result before its call", {"messages": [USER, RESULT, CALL, ANSWER]},
     "messages[1].tool_call_id: 'call_1' answers no earlier assistant tool call"),
    ("a call answered twice", {"messages": [USER, CALL, RESULT, RESULT, ANSWER]},
     "messages[3].tool_call_id: 'call_1' was answered already by messages[2]"),
    ("a tool result that names no call", {"messages": [USER, CALL, {"role": "tool", "content": "18 C"}, ANSWER]},
     "messages[2].tool_call_id: a tool message says which call it answers"),
    ("arguments that are not JSON", {"messages": [USER, with_arguments("{city: Paris}"), RESULT, ANSWER]},
     "messages[1].tool_calls[0].function.arguments: not valid JSON ("),
    ("arguments that are not an object", {"messages": [USER, with_arguments("[1, 2]"), RESULT, ANSWER]},
     "messages[1].tool_calls[0].function.arguments: the JSON is an array, not an object"),
    ("a call without a function name", {"messages": [USER, {**CALL, "tool_calls": [{"id": "call_1", "function": {"arguments": "{}"}}]}, RESULT, ANSWER]},
     "messages[1].tool_calls[0].function.name: required"),
    ("two calls with one id", {"messages": [USER, CALL, RESULT, with_arguments("{}"), ANSWER]},
     "messages[3].tool_calls[0].id: 'call_1' is already the id of messages[1].tool_calls[0]"),
    ("a user message that calls a tool", {"messages": [{**USER, "tool_calls": CALL["tool_calls"]}, ANSWER]},
     "messages[0].tool_calls: only assistant messages call tools"),
    ("no user message", {"messages": [{"role": "system", "content": "Be brief."}, ANSWER]},
     "messages: a trace needs at least one user message"),
    ("no messages at all", {"messages": []}, "messages: a trace needs at least one user message"),
    ("an answered trace that ends on a tool result", {"messages": [USER, CALL, RESULT]},
     "messages[2]: an answered trace ends with the assistant's answer (role assistant, with content), not a tool message"),
    ("an assistant message with nothing in it", {"messages": [USER, {"role": "assistant"}]},
     "messages[1].content: an assistant message needs content or tool_calls"),
    ("an image part", {"messages": [{**USER, "content": [{"type": "image_url", "image_url": {"url": "x"}}]}, ANSWER]},
     "messages[0].content[0]: found a part of type 'image_url'; a trace keeps text parts only"),
    ("content that is a number", {"messages": [USER, {**ANSWER, "content": 42}]},
     "messages[1].content: found a number; give a string, null, or a list of text parts"),
    ("a field chat messages do not have", {"messages": [USER, {**ANSWER, "mood": "happy"}]},
     "messages[1].mood: not a field here (role, content, name, tool_calls, tool_call_id); remove it"),
    ("a message that is not an object", {"messages": [USER, "hello", ANSWER]},
     "messages[1]: Input should be a valid dictionary"),
    ("too many messages", {"messages": [USER, ANSWER] * (MAX_MESSAGES // 2 + 1)},
     f"messages: {MAX_MESSAGES + 2} messages is over the limit of {MAX_MESSAGES}; split the conversation"),
    ("a tag that is not a slug", {"messages": [USER, ANSWER], "tags": ["billing", "Not A Slug"]},
     "tags[1]: 'Not A Slug' is not a slug; use 1-64 lowercase letters"),
    ("a tag that is not a string", {"messages": [USER, ANSWER], "tags": [7]}, "tags[0]: a number is not a slug"),
    ("too many tags", {"messages": [USER, ANSWER], "tags": [f"t{i}" for i in range(65)]},
     "tags: 65 is over the limit of 64"),
    ("nested metadata", {"messages": [USER, ANSWER], "metadata": {"customer": {"id": 1}}},
     "metadata['customer']: found an object; a metadata value is a string, number or boolean"),
    ("a negative latency", {"messages": [USER, ANSWER], "latency_ms": -5},
     "latency_ms: Input should be greater than or equal to 0"),
    ("an outcome there is not", {"messages": [USER, ANSWER], "outcome": "meh"},
     "outcome: Input should be 'answered', 'failed' or 'cancelled'"),
    ("negative token counts", {"messages": [USER, ANSWER], "usage": {"prompt_tokens": -1}},
     "usage.prompt_tokens: Input should be greater than or equal to 0"),
]  # fmt: skip


@pytest.mark.parametrize(("values", "start"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_malformed_trace_is_refused_naming_the_field(values: dict[str, Any], start: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        TraceIn.checked(values)
    assert caught.value.message.startswith(start), caught.value.message
    assert "Traceback" not in caught.value.message and "x" * 100 not in caught.value.message


def test_an_oversized_trace_is_refused_with_its_size_and_the_limit() -> None:
    messages = oversized()
    size = json_size(messages)
    assert size > MAX_MESSAGES_BYTES
    with pytest.raises(InvalidArguments) as caught:
        TraceIn.checked({"messages": messages})
    assert caught.value.message == (f"messages: {size:,} bytes is over the limit of {MAX_MESSAGES_BYTES:,}; split the "
                                    "conversation or drop large tool results")  # fmt: skip


def test_several_shape_problems_are_reported_together() -> None:
    with pytest.raises(InvalidArguments) as caught:
        TraceIn.checked({"messages": [{"content": "hi"}, {**ANSWER, "role": "bot"}], "latency_ms": "soon"})
    message = caught.value.message
    assert "messages[0].role: required" in message and "messages[1].role: Input should be" in message
    assert "latency_ms: Input should be a valid integer" in message


def test_a_conversation_with_tool_calls_comes_through_in_openai_form() -> None:
    reply = {**CALL, "refusal": None, "annotations": [], "audio": None}  # as an OpenAI SDK's message dumps itself
    trace = TraceIn.checked({
        "messages": [{"role": "system", "content": "Be brief."}, USER, reply, RESULT,
                     {**ANSWER, "content": [{"type": "text", "text": "18 °C"}, {"type": "text", "text": "and sunny."}]}],
        "model": "support-bot@v3", "latency_ms": 1200.4, "usage": {"prompt_tokens": 50, "completion_tokens": 12, "total_tokens": 62},
        "tags": ["weather", "weather", "paris"], "metadata": {"ticket": "T-1", "retries": 2, "vip": True, "score": 0.5},
    })  # fmt: skip
    assert len(trace.messages) == 5 and trace.tool_call_count() == 1
    assert trace.messages[2].openai() == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]}  # fmt: skip
    assert trace.messages[4].text() == "18 °C\nand sunny."
    assert trace.tags == ["weather", "paris"]  # repeats dropped, order kept
    assert trace.metadata == {"ticket": "T-1", "retries": 2, "vip": True, "score": 0.5}
    assert type(trace.metadata["vip"]) is bool and trace.usage is not None and trace.usage.prompt_tokens == 50
    assert trace.latency_ms == 1200  # whole milliseconds


def test_a_failed_or_cancelled_trace_may_end_before_the_answer() -> None:
    for outcome in ("failed", "cancelled"):
        trace = TraceIn.checked({"messages": [USER, CALL, RESULT], "outcome": outcome})
        assert trace.outcome == outcome and trace.messages[-1].role == "tool"


def test_a_call_without_arguments_reads_as_an_empty_object() -> None:
    trace = TraceIn.checked({"messages": [USER, with_arguments(""), RESULT, ANSWER]})
    calls = trace.messages[1].tool_calls or []
    assert json.loads(calls[0].function.arguments) == {}


def test_an_in_process_caller_gets_the_same_refusals() -> None:
    """The operator builds TraceIn itself: the rules between messages hold there too."""
    with pytest.raises(InvalidArguments, match=r"^messages\[2\]\.tool_call_id: 'call_9' answers no earlier"):
        TraceIn(messages=[USER, CALL, {**RESULT, "tool_call_id": "call_9"}, ANSWER])  # type: ignore[list-item]
