"""A trace as it comes in (TraceIn: OpenAI chat messages with tool calls, and what is known
about the turn) and as the trace tools return it. TraceIn checks everything on construction;
`TraceIn.checked` turns what the model refuses into one InvalidArguments naming each field."""

from __future__ import annotations

import json
import math
import re
import sqlite3
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from forge_mcp.errors import InvalidArguments
from forge_mcp.traces.limits import (
    MAX_LATENCY_MS,
    MAX_METADATA_KEY_CHARS,
    MAX_METADATA_KEYS,
    MAX_METADATA_VALUE_CHARS,
    MAX_REF_CHARS,
    MAX_TAGS,
    SLUG,
)
from forge_mcp.traces.messages import MESSAGE_FIELDS, Outcome, TraceMessage, check_conversation, clean_raw, json_kind

MetadataValue = bool | int | float | str
# Timers give fractions of a millisecond; a trace keeps whole ones.
Milliseconds = Annotated[int, BeforeValidator(lambda v: round(v) if isinstance(v, float) and math.isfinite(v) else v)]
MAX_ERRORS_SHOWN = 10
_SLUG = re.compile(SLUG)


class TokenUsage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # total_tokens, *_tokens_details: derived or provider-specific
    prompt_tokens: int | None = Field(None, ge=0)
    completion_tokens: int | None = Field(None, ge=0)


class TraceIn(BaseModel):
    """One conversation, or one turn of it, as an agent had it."""

    model_config = ConfigDict(extra="forbid")
    messages: list[TraceMessage] = Field(description="OpenAI chat messages, oldest first")
    outcome: Outcome = "answered"
    model: str | None = Field(None, min_length=1, max_length=MAX_REF_CHARS, description="The model that answered")
    latency_ms: Milliseconds | None = Field(None, ge=0, le=MAX_LATENCY_MS)
    usage: TokenUsage | None = None
    thread: str | None = Field(
        None, min_length=1, max_length=MAX_REF_CHARS, description="Groups a conversation's turns"
    )
    tags: list[str] = Field(default_factory=list, description="Short slugs to filter by")
    metadata: dict[str, MetadataValue] = Field(default_factory=dict, description="Flat: string keys, scalar values")

    @model_validator(mode="before")
    @classmethod
    def _raw(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {k: v for k, v in data.items() if not (k in ("tags", "metadata") and v is None)}
        if "messages" in data:
            data["messages"] = clean_raw(data["messages"])
        if isinstance(data.get("tags"), list):
            data["tags"] = check_slugs("tags", data["tags"])
        if isinstance(data.get("metadata"), dict):
            check_metadata(data["metadata"])
        return data

    @model_validator(mode="after")
    def _conversation(self) -> TraceIn:
        check_conversation(self.messages, self.outcome)
        return self

    @classmethod
    def checked(cls, values: Mapping[str, Any]) -> TraceIn:
        """Validate, with every problem as an InvalidArguments that names its field."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise InvalidArguments(describe_trace_error(exc)) from None

    def tool_call_count(self) -> int:
        return sum(len(m.tool_calls or ()) for m in self.messages)


def check_slugs(field: str, values: list[Any]) -> list[str]:
    """Tags or labels: at most MAX_TAGS slugs, each named by position when it is not one; repeats dropped."""
    if len(values) > MAX_TAGS:
        raise InvalidArguments(
            f"{field}: {len(values)} is over the limit of {MAX_TAGS}; keep the ones you will filter by"
        )
    for i, value in enumerate(values):
        if not isinstance(value, str) or not _SLUG.match(value):
            shown = repr(value[:40]) if isinstance(value, str) else json_kind(value)
            raise InvalidArguments(f"{field}[{i}]: {shown} is not a slug; use 1-64 lowercase letters, digits, '.', '_' "
                                   "or '-', starting with a letter or digit, e.g. 'billing'")  # fmt: skip
    return list(dict.fromkeys(values))


def check_metadata(metadata: dict[Any, Any]) -> None:
    if len(metadata) > MAX_METADATA_KEYS:
        raise InvalidArguments(f"metadata: {len(metadata)} keys is over the limit of {MAX_METADATA_KEYS}; keep the ones "
                               "you will need to read the trace")  # fmt: skip
    for key, value in metadata.items():
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_METADATA_KEY_CHARS:
            raise InvalidArguments(f"metadata: the key {str(key)[:40]!r} is not 1-{MAX_METADATA_KEY_CHARS} characters")
        where = f"metadata[{key!r}]"
        if isinstance(value, dict | list) or value is None:
            raise InvalidArguments(f"{where}: found {json_kind(value)}; a metadata value is a string, number or boolean "
                                   "(flatten nested values into keys of their own)")  # fmt: skip
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArguments(f"{where}: {value} is not a finite number")
        if isinstance(value, str) and len(value) > MAX_METADATA_VALUE_CHARS:
            raise InvalidArguments(f"{where}: {len(value):,} characters is over the limit of "
                                   f"{MAX_METADATA_VALUE_CHARS:,}; metadata describes a trace, the messages carry it")  # fmt: skip


def field_path(loc: tuple[int | str, ...]) -> str:
    """('messages', 3, 'tool_calls', 0, 'id') -> 'messages[3].tool_calls[0].id'."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path


def describe_trace_error(exc: ValidationError) -> str:
    """'field: problem' for each error (at most MAX_ERRORS_SHOWN), without echoing the input."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for err in errors[:MAX_ERRORS_SHOWN]:
        loc = err["loc"]
        where = field_path(loc) or "trace"
        if err["type"] == "extra_forbidden":
            fields = (
                ", ".join(MESSAGE_FIELDS) if loc[0] == "messages" and len(loc) == 3 else ", ".join(TraceIn.model_fields)
            )
            parts.append(f"{where}: not a field here ({fields}); remove it")
        elif err["type"] == "missing":
            parts.append(f"{where}: required")
        else:
            parts.append(f"{where}: {err['msg']}")
    if len(errors) > MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - MAX_ERRORS_SHOWN} more")
    return "; ".join(parts)


class TraceRecorded(BaseModel):
    id: str = Field(description="The trace's id: trace_feedback and forge://traces/{id} take it")
    message_count: int
    tool_call_count: int
    pii: dict[str, int] = Field(description="What was masked before storing, by kind (email, phone, secret…)")
    redacted: bool = Field(description="True when anything was masked")


class TraceSummary(BaseModel):
    id: str
    created_at: float = Field(description="Unix time, seconds")
    source: str = Field(description="Who recorded it: chat, a2a, external…")
    principal: str = Field(description="Whose trace it is")
    thread: str | None
    model: str | None
    outcome: Outcome
    latency_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    message_count: int
    tool_call_count: int
    preview: str = Field(description="The first user message, shortened")
    tags: list[str]
    rating: int | None = Field(description="1 (bad) to 5 (good), from trace_feedback")
    labels: list[str]
    corrected: bool = Field(description="True when feedback gave the answer the assistant should have given")
    feedback_at: float | None
    judge_rating: int | None = Field(None, description="1-5 from trace_judge; never a person's")
    judge_reason: str | None = None
    judge_model: str | None = None
    judged_at: float | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TraceSummary:
        return cls(**_decoded(row, cls))


class TraceDetail(TraceSummary):
    messages: list[dict[str, Any]] = Field(description="OpenAI chat messages, PII masked ([EMAIL], [PHONE]…)")
    metadata: dict[str, MetadataValue]
    pii: dict[str, int] = Field(description="What was masked before storing, by kind")
    correction: str | None = Field(description="The answer the assistant should have given, from trace_feedback")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> TraceDetail:
        return cls(**_decoded(row, cls))


class TraceList(BaseModel):
    traces: list[TraceSummary] = Field(description="Newest first")
    total: int = Field(description="Traces that match the filters, on every page")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one")


class TraceFeedbackResult(BaseModel):
    id: str
    rating: int | None
    correction: str | None = Field(description="As stored, PII masked")
    labels: list[str]
    feedback_at: float
    pii: dict[str, int] = Field(description="What was masked in the correction, by kind")


_JSON_COLUMNS = ("tags", "labels", "messages", "metadata", "pii")


def _decoded(row: sqlite3.Row, model: type[BaseModel]) -> dict[str, Any]:
    values = {key: row[key] for key in row.keys() if key in model.model_fields}
    for key in _JSON_COLUMNS:
        if key in values:
            values[key] = json.loads(values[key])
    values["corrected"] = bool(row["corrected"])
    return values
