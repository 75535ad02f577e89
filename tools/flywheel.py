"""Traces: record what an agent was asked, called and answered, list them, rate or correct
them (or have an LLM judge grade them), turn them into training datasets, and run a whole
flywheel cycle (traces → train → compare with production → gated promote → serve)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.flywheel.cycle import CycleSettings
from forge_mcp.flywheel.judging import MAX_JUDGED
from forge_mcp.flywheel.service import MAX_TRACES
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.traces.limits import MAX_CORRECTION_CHARS, MAX_LIST, SOURCE
from forge_mcp.traces.models import TraceDetail, TraceFeedbackResult, TraceIn, TraceList, TraceRecorded
from forge_mcp.traces.selection import TraceSelection

toolset = Toolset("flywheel", "Conversation traces of agents, with ratings and corrections, and the datasets made of them.")

TraceId = Annotated[str, Field(pattern=r"^tr_[0-9a-f]{8,40}$")]
Outcome = Literal["answered", "failed", "cancelled"]
JudgeUrl = Annotated[str, Field(max_length=512, description="OpenAI-compatible, e.g. http://127.0.0.1:8000/v1")]
JudgeKeyEnv = Annotated[str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
                                          description="Server environment variable holding the judge's API key")]  # fmt: skip
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
    min_judge_rating: Annotated[int | None, Field(ge=1, le=5)] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 20,
    cursor: Annotated[str | None, Field(description="next_cursor of the page before")] = None,
) -> TraceList:
    """Your traces (an admin key: everyone's), newest first, filtered: summaries with outcome,
    latency, tokens, tool calls, the first user message, tags, rating, labels and the judge's
    grade. The whole trace is the resource forge://traces/{id}. Instant, read-only."""
    return await services.traces.list(principal, since=since, until=until, source=source, model=model, outcome=outcome,
                                      thread=thread, tags=tags, min_rating=min_rating, max_rating=max_rating,
                                      has_feedback=has_feedback, min_judge_rating=min_judge_rating, limit=limit,
                                      cursor=cursor)  # fmt: skip


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


@toolset.capability(scope="train", title="Turn traces into a dataset", long_running=True, job_kind="traces_to_dataset")
async def traces_to_dataset(
    services: Services,
    principal: Principal,
    name: Annotated[str, Field(min_length=1, max_length=64, description="The dataset to make, e.g. support-sft")],
    kind: Annotated[Literal["auto", "sft", "dpo"], Field(description="auto: SFT, and DPO pairs as <name>-pairs")] = "auto",
    since: float | None = None,
    until: float | None = None,
    source: str | None = None,
    model: str | None = None,
    outcome: Outcome | None = None,
    thread: str | None = None,
    tags: list[str] | None = None,
    min_rating: Annotated[int, Field(ge=1, le=5)] = 4,
    judge_min_score: Annotated[int | None, Field(ge=1, le=5, description="Unrated traces graded this or better count")] = None,
    eval_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.1,
    seed: int = 0,
    dedup: Literal["none", "exact", "near"] = "near",
    pii: Literal["report", "redact", "drop"] = "redact",
    max_traces: Annotated[int, Field(ge=1, le=MAX_TRACES)] = 1000,
    held_out: Annotated[str | None, Field(max_length=80, description="Dataset: traces asking its questions give no row")] = None,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Your traces (filters as trace_list's) as a new dataset version: SFT rows (system prompt and
    tool calls kept) from corrected traces and from ones rated min_rating+; DPO pairs from a
    correction vs the original, or a better- vs worse-rated answer to one prompt. Cleaned,
    PII-handled, deduplicated and split as dataset_prepare does, with lineage to every trace and a
    report of why traces were dropped. A CPU job, seconds; follow with job_wait."""
    return await services.flywheel.traces_to_dataset(
        principal, TraceSelection.checked(since=since, until=until, source=source, model=model, outcome=outcome,
                                          thread=thread, tags=tags),
        name=name, kind=kind, min_rating=min_rating, judge_min_score=judge_min_score, eval_fraction=eval_fraction,
        seed=seed, dedup=dedup, pii=pii, max_traces=max_traces, held_out=held_out, idempotency_key=idempotency_key,
    )  # fmt: skip


@toolset.capability(scope="train", title="Grade traces with an LLM judge", long_running=True, job_kind="trace_judge")
async def trace_judge(
    services: Services,
    principal: Principal,
    judge_url: JudgeUrl,
    judge_model: Annotated[str, Field(min_length=1, max_length=200)],
    judge_api_key_env: JudgeKeyEnv = None,
    since: float | None = None,
    until: float | None = None,
    source: str | None = None,
    model: str | None = None,
    thread: str | None = None,
    tags: list[str] | None = None,
    limit: Annotated[int, Field(ge=1, le=MAX_JUDGED)] = 100,
    regrade: Annotated[bool, Field(description="Also traces the judge graded before")] = False,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Has an LLM judge (judge settings as model_evaluate's) grade 1-5 your answered traces that no
    person rated, newest first, up to limit: is the answer correct and helpful for the request? The
    grade is stored as judge_rating, never over a person's rating; traces_to_dataset uses it with
    judge_min_score. A job of one judge call per trace (seconds each); follow with job_wait."""
    return await services.flywheel.judge(
        principal, TraceSelection.checked(since=since, until=until, source=source, model=model, thread=thread, tags=tags),
        judge_url=judge_url, judge_model=judge_model, judge_api_key_env=judge_api_key_env, limit=limit, regrade=regrade,
        idempotency_key=idempotency_key,
    )  # fmt: skip


@toolset.capability(scope="train", title="Run a flywheel cycle", long_running=True, job_kind="workflow")
async def flywheel_run(
    services: Services,
    principal: Principal,
    model: Annotated[str, Field(max_length=80, description="Has a production version")],
    eval_dataset: Annotated[str, Field(max_length=80, description="Held-out chat data, not from traces")],
    since: Annotated[float | None, Field(description="Default: the last cycle's end")] = None,
    min_rows: Annotated[int, Field(ge=1)] = 20,
    min_rating: Annotated[int, Field(ge=1, le=5)] = 4,
    judge_min_score: Annotated[int | None, Field(ge=1, le=5, description="Unrated traces graded this or better count")] = None,
    recipe: str = "sft-lora",
    max_steps: Annotated[int, Field(ge=1)] = 200,
    learning_rate: Annotated[float, Field(gt=0, le=0.1)] = 2e-4,
    metric: str = "eval_loss",
    min_pairs: Annotated[int, Field(ge=1, description="Fewer DPO pairs: SFT only")] = 10,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """One flywheel cycle, a workflow (configs/workflows/flywheel[-dpo].yaml): your traces since →
    SFT rows (+ DPO pairs) → SFT from production's base (then DPO on it merged, with min_pairs+
    pairs) → compare with production on eval_dataset → promote if it beats production on metric
    → serve. Under min_rows rows or a refused gate: stops with a report, production untouched.
    Operator on forge:<model>@production follows. Job; job_wait."""
    return await services.flywheel.run_cycle(
        principal, model, eval_dataset, CycleSettings(min_rows=min_rows, min_rating=min_rating, judge_min_score=judge_min_score,
                                                      recipe=recipe, max_steps=max_steps, learning_rate=learning_rate,
                                                      metric=metric, min_pairs=min_pairs),
        since=since, idempotency_key=idempotency_key,
    )  # fmt: skip


@toolset.resource("forge://traces/{trace_id}", name="trace")
async def trace_resource(services: Services, principal: Principal, trace_id: str) -> TraceDetail:
    """A whole trace: its messages (PII masked), metadata, what was masked, and its feedback."""
    return await services.traces.get(principal, trace_id)
