"""A trace's messages: the OpenAI chat format (system, user, assistant with tool calls, tool
results) and the rules between messages. What a pydantic model would report poorly (more
messages or bytes than allowed, content that is neither text nor text parts) is checked on
the raw input first; the rules between messages (a tool result answers an earlier call, an
answered conversation ends with the answer) once each message has its shape. Every error
names its message and field, e.g. `messages[3].tool_call_id`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

from forge_mcp.errors import InvalidArguments
from forge_mcp.traces.limits import MAX_MESSAGES, MAX_MESSAGES_BYTES, MAX_NAME_CHARS

Role = Literal["system", "user", "assistant", "tool"]
Outcome = Literal["answered", "failed", "cancelled"]
MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "tool_call_id")
ARGUMENTS_EXAMPLE = """'{"city": "Paris"}'"""


def _arguments(value: str) -> str:
    """A JSON object in a string; an empty string (a call without arguments) becomes '{}'."""
    if not value.strip():
        return "{}"
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise PydanticCustomError("json_arguments", "not valid JSON ({error}); give the arguments as a JSON object in "
                                  "a string, e.g. " + ARGUMENTS_EXAMPLE, {"error": str(exc)}) from None  # fmt: skip
    if not isinstance(parsed, dict):
        raise PydanticCustomError("json_arguments", "the JSON is {found}, not an object; give the arguments as a JSON "
                                  "object in a string, e.g. " + ARGUMENTS_EXAMPLE, {"found": json_kind(parsed)})  # fmt: skip
    return value


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"] = "text"
    text: str


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    arguments: Annotated[str, AfterValidator(_arguments)] = Field(description="A JSON object, encoded in a string")


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")  # a streamed call's `index` and the like say nothing here
    id: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    type: Literal["function"] = "function"
    function: ToolFunction


class TraceMessage(BaseModel):
    """One chat message. Content is a string, text parts, or null (an assistant message that only
    calls tools); an assistant calls tools with `tool_calls`, a tool message answers one by `tool_call_id`."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    content: str | list[TextPart] | None = None
    name: str | None = Field(None, max_length=MAX_NAME_CHARS)
    tool_calls: Annotated[list[ToolCall] | None, BeforeValidator(lambda v: v or None)] = None
    tool_call_id: str | None = Field(None, min_length=1, max_length=MAX_NAME_CHARS)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content)
        return self.content or ""

    def openai(self) -> dict[str, Any]:
        """As an OpenAI chat API takes it: role and content always, the rest when set."""
        data = self.model_dump(mode="json", exclude_none=True)
        return {"role": data.pop("role"), "content": data.pop("content", None), **data}


def clean_raw(messages: Any) -> Any:
    """The bounds, and content shapes, checked on the raw input; empty fields a chat API adds to
    its messages (`refusal: null`, `annotations: []`) are dropped rather than refused."""
    if not isinstance(messages, list):
        return messages  # the model says what it should be
    if len(messages) > MAX_MESSAGES:
        raise InvalidArguments(f"messages: {len(messages):,} messages is over the limit of {MAX_MESSAGES:,}; split the "
                               "conversation into several traces (with the same thread)")  # fmt: skip
    size = json_size(messages)
    if size > MAX_MESSAGES_BYTES:
        raise InvalidArguments(f"messages: {size:,} bytes is over the limit of {MAX_MESSAGES_BYTES:,}; split the "
                               "conversation or drop large tool results")  # fmt: skip
    return [_clean_message(f"messages[{i}]", message) for i, message in enumerate(messages)]


def _clean_message(where: str, message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    kept = {k: v for k, v in message.items() if k in MESSAGE_FIELDS or v not in (None, "", [], {})}
    content = kept.get("content")
    if content is not None and not isinstance(content, str):
        kept["content"] = _text_parts(f"{where}.content", content)
    return kept


def _text_parts(where: str, content: Any) -> list[dict[str, str]]:
    if not isinstance(content, list):
        raise InvalidArguments(f"{where}: found {json_kind(content)}; give a string, null, or a list of text parts "
                               """([{"type": "text", "text": "..."}])""")  # fmt: skip
    parts = []
    for i, part in enumerate(content):
        if not isinstance(part, dict):
            found = json_kind(part)
        elif part.get("type") != "text":
            found = f"a part of type {str(part.get('type'))[:40]!r}"
        elif not isinstance(part.get("text"), str):
            found = "a text part whose 'text' is not a string"
        else:
            parts.append({"type": "text", "text": part["text"]})
            continue
        raise InvalidArguments(f"{where}[{i}]: found {found}; a trace keeps text parts only "
                               """({"type": "text", "text": "..."}): describe images or files in text, or leave them out""")  # fmt: skip
    return parts


def check_conversation(messages: Sequence[TraceMessage], outcome: Outcome) -> None:
    """Each role's fields, tool results that answer earlier calls (once each), at least one user
    message, and an answered conversation ending with the assistant's answer."""
    calls: dict[str, str] = {}  # tool call id -> where it was made
    answered: dict[str, str] = {}  # tool call id -> the message that answered it
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        _check_fields(where, message)
        for j, call in enumerate(message.tool_calls or ()):
            if call.id in calls:
                raise InvalidArguments(f"{where}.tool_calls[{j}].id: {call.id!r} is already the id of {calls[call.id]}; "
                                       "give each tool call its own id")  # fmt: skip
            calls[call.id] = f"{where}.tool_calls[{j}]"
        call_id = message.tool_call_id
        if message.role == "tool" and call_id is not None:
            if call_id not in calls:
                raise InvalidArguments(f"{where}.tool_call_id: {call_id!r} answers no earlier assistant tool call; give "
                                       "the id of a tool call in messages before it")  # fmt: skip
            if call_id in answered:
                raise InvalidArguments(f"{where}.tool_call_id: {call_id!r} was answered already by {answered[call_id]}; "
                                       "each tool call has one result")  # fmt: skip
            answered[call_id] = where
    if not any(m.role == "user" for m in messages):
        raise InvalidArguments("messages: a trace needs at least one user message (role user): what the assistant "
                               "was asked")  # fmt: skip
    last = messages[-1]
    if outcome == "answered" and (last.role != "assistant" or not last.text().strip()):
        ends = "an assistant message without content" if last.role == "assistant" else f"a {last.role} message"
        raise InvalidArguments(f"messages[{len(messages) - 1}]: an answered trace ends with the assistant's answer (role "
                               f"assistant, with content), not {ends}; add the answer, or set outcome to failed or "
                               "cancelled")  # fmt: skip


def _check_fields(where: str, message: TraceMessage) -> None:
    role = message.role
    if message.tool_calls and role != "assistant":
        raise InvalidArguments(f"{where}.tool_calls: only assistant messages call tools, this one's role is {role}; "
                               "remove tool_calls or make it an assistant message")  # fmt: skip
    if message.tool_call_id is not None and role != "tool":
        raise InvalidArguments(f"{where}.tool_call_id: only a tool message answers a tool call, this one's role is "
                               f"{role}; remove tool_call_id or make it a tool message")  # fmt: skip
    if role == "tool" and message.tool_call_id is None:
        raise InvalidArguments(f"{where}.tool_call_id: a tool message says which call it answers; give the id of a "
                               "tool call in messages before it")  # fmt: skip
    if message.content is None and not (role == "assistant" and message.tool_calls):
        needs = ("content or tool_calls" if role == "assistant" else
                 "content: the tool's result as a string ('' for none)" if role == "tool" else "content")  # fmt: skip
        raise InvalidArguments(f"{where}.content: {'an' if role == 'assistant' else 'a'} {role} message needs {needs}")


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (models in it as they would be sent)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_jsonable)
    return len(text.encode("utf-8", "surrogatepass"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return str(value)


def json_kind(value: Any) -> str:
    """What a JSON value is, in words, without echoing it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
