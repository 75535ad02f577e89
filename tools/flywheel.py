"""Traces: record what an agent was asked, called and answered, list them, and rate or correct
them; the raw data the flywheel turns into training sets."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.traces.limits import MAX_CORRECTION_CHARS, MAX_LIST, SOURCE
from forge_mcp.traces.models import TraceDetail, TraceFeedbackResult, TraceIn, TraceList, TraceRecorded

toolset = Toolset("flywheel", "Conversation traces of agents, with ratings and corrections: the flywheel's raw data.")

TraceId = Annotated[str, Field(pattern=r"^tr_[0-9a-f]{8,40}$")]
Outcome = Literal["answered", "failed", "cancelled"]
Slugs = Annotated[list[str] | None, Field(description="Lowercase slugs, e.g. billing")]
Messages = Annotated[
    list[dict[str, Any]],
    Field(
        description="OpenAI chat format: role system/user/assistant/tool; assistant tool_calls [{id, type: function, "
        "function: {name, arguments: JSON string}}]; tool messages with tool_call_id"
    ),
]


@toolset.capability(scope="train", title="Record a trace")
async def trace_record(
    services: Services,
    principal: Principal,
    messages: Messages,
    outcome: Outcome = "answered",
    model: str | None = None,
    latency_ms: int | None = None,
    usage: Annotated[dict[str, Any] | None, Field(description="prompt_tokens, completion_tokens")] = None,
    thread: Annotated[str | None, Field(description="Shared by a conversation's turns")] = None,
    tags: Slugs = None,
    metadata: Annotated[dict[str, Any] | None, Field(description="Flat: string, number or boolean values")] = None,
    source: Annotated[str, Field(pattern=SOURCE)] = "external",
    idempotency_key: Annotated[str | None, Field(max_length=128, description="Sent again: no second copy")] = None,
) -> TraceRecorded:
    """Stores an agent conversation (or one turn) as your trace: use it after a conversation worth
    rating (trace_feedback) or training on later. Emails, phones, keys and the like are masked
    before it is stored; the result counts them. At most 500 messages, 1 MB; an answered trace
    ends with the assistant's answer. Instant."""
    return await services.traces.record(principal, TraceIn.checked({
        "messages": messages, "outcome": outcome, "model": model, "latency_ms": latency_ms, "usage": usage,
        "thread": thread, "tags": tags, "metadata": metadata}), source=source, idempotency_key=idempotency_key)  # fmt: skip


@toolset.capability(scope="read", title="List traces", read_only=True)
async def trace_list(
    services: Services,
    principal: Principal,
    since: Annotated[float | None, Field(description="Unix time (s), as created_at")] = None,
    until: float | None = None,
    source: str | None = None,
    model: str | None = None,
    outcome: Outcome | None = None,
    thread: str | None = None,
    tags: Annotated[list[str] | None, Field(description="Each must be on the trace")] = None,
    min_rating: Annotated[int | None, Field(ge=1, le=5)] = None,
    max_rating: Annotated[int | None, Field(ge=1, le=5)] = None,
    has_feedback: bool | None = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 20,
    cursor: Annotated[str | None, Field(description="next_cursor of the page before")] = None,
) -> TraceList:
    """Your traces (an admin key: everyone's), newest first, filtered: summaries with outcome,
    latency, tokens, tool calls, the first user message, tags, rating and labels. The whole
    trace is the resource forge://traces/{id}. Instant, read-only."""
    return await services.traces.list(principal, since=since, until=until, source=source, model=model, outcome=outcome,
                                      thread=thread, tags=tags, min_rating=min_rating, max_rating=max_rating,
                                      has_feedback=has_feedback, limit=limit, cursor=cursor)  # fmt: skip


@toolset.capability(scope="train", title="Rate or correct a trace", idempotent=True)
async def trace_feedback(
    services: Services,
    principal: Principal,
    trace_id: TraceId,
    rating: Annotated[int | None, Field(ge=1, le=5, description="1 bad .. 5 good")] = None,
    correction: Annotated[
        str | None, Field(max_length=MAX_CORRECTION_CHARS, description="The answer it should have given")
    ] = None,
    labels: Annotated[list[str] | None, Field(description="Replace its labels, e.g. wrong-tool")] = None,
) -> TraceFeedbackResult:
    """Rates one of your traces, gives the answer it should have ended with (PII masked; training
    prefers it over the original) or replaces its labels: at least one, the rest stays. Ids come
    from trace_list. Instant."""
    return await services.traces.feedback(principal, trace_id, rating=rating, correction=correction, labels=labels)


@toolset.resource("forge://traces/{trace_id}", name="trace")
async def trace_resource(services: Services, principal: Principal, trace_id: str) -> TraceDetail:
    """A whole trace: its messages (PII masked), metadata, what was masked, and its feedback."""
    return await services.traces.get(principal, trace_id)
