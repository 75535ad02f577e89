"""trace_judge: an LLM judge (the evaluation judge's endpoint settings) grades answered traces
nobody rated, 1-5 by forge_mcp.models.judge's ANSWER_RUBRIC (no reference answer: is this a
correct, helpful answer to the request?), and each grade is written as it comes, apart from a
person's rating, which it never touches (a trace rated meanwhile keeps no grade).

It runs in the server, as an orchestration does (a coroutine, no worker process, no admission
slot): the work is waiting on the judge's endpoint one trace at a time, and the grades go
straight into the trace store, so a cancel keeps what was graded. Run again after a server
restart, it grades only what is still ungraded, within what is left of its limit."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.flywheel.rows import chat
from forge_mcp.models.judge import HIGHEST, LOWEST, Judge, JudgeConfig
from forge_mcp.orchestration.context import OrchestrationContext
from forge_mcp.orchestration.kinds import OrchestrationKind
from forge_mcp.security.principal import Principal
from forge_mcp.traces.models import TraceDetail
from forge_mcp.traces.selection import TraceSelection

JUDGE_KIND = "trace_judge"
MAX_JUDGED = 500  # traces one trace_judge grades at most
FAILURES_SHOWN = 5


class JudgeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    selection: TraceSelection
    judge: JudgeConfig
    limit: int = Field(ge=1, le=MAX_JUDGED)
    regrade: bool = False  # also traces the judge graded before this job
    scopes: list[str]  # the caller's: the job sees and grades only what they may


class JudgeFailure(BaseModel):
    trace_id: str
    reason: str


class TraceJudgement(BaseModel):
    judge_model: str
    selected: int = Field(description="Traces sent to the judge")
    graded: int
    failed: int
    rated_meanwhile: int = Field(description="A person rated them while the job ran: no grade written")
    ratings: dict[str, int] = Field(description="Grades written, by value 1-5")
    failures: list[JudgeFailure] = Field(description="The first traces the judge could not grade, and why")


def judge_input(trace: TraceDetail) -> tuple[str, str]:
    """(the conversation before the final answer as text, the final answer) for the judge:
    each message as 'role: text', a tool call as 'assistant calls name(arguments)'."""
    messages = chat(trace.messages)
    lines = []
    for message in messages[:-1]:
        for call in message.get("tool_calls", ()):
            lines.append(f"assistant calls {call['function']['name']}({call['function']['arguments']})")
        if message.get("content"):
            lines.append(f"{message['role']}: {message['content']}")
    return "\n".join(lines), str(messages[-1].get("content", ""))


async def judge_traces(ctx: OrchestrationContext, arguments: JudgeArguments) -> TraceJudgement:
    principal = Principal(ctx.principal, frozenset(arguments.scopes))
    traces = ctx.services.traces
    started = ctx.job.created_at
    # What this job graded before a server restart counts against its limit.
    remaining = arguments.limit - await traces.count(principal, arguments.selection, judged_since=started)
    candidates = await traces.judge_candidates(principal, arguments.selection, limit=remaining,
                                               regrade_before=started if arguments.regrade else None) if remaining > 0 else []  # fmt: skip
    out = TraceJudgement(judge_model=arguments.judge.model, selected=len(candidates), graded=0, failed=0,
                         rated_meanwhile=0, ratings={}, failures=[])  # fmt: skip
    ctx.log(f"{len(candidates)} traces to grade with {arguments.judge.model}")
    try:
        judge = Judge(arguments.judge)
    except ValueError as exc:
        raise InvalidArguments(str(exc)) from None
    with judge:
        for done, trace in enumerate(candidates, 1):
            grade = await asyncio.to_thread(judge.grade_answer, *judge_input(trace))
            if grade.score is None:
                out.failed += 1
                if len(out.failures) < FAILURES_SHOWN:
                    out.failures.append(JudgeFailure(trace_id=trace.id, reason=grade.reason))
                ctx.log(f"{trace.id}: not graded: {grade.reason}")
            else:
                rating = min(HIGHEST, max(LOWEST, int(grade.score + 0.5)))
                if await traces.record_judgement(principal, trace.id, rating=rating, reason=grade.reason,
                                                 model=arguments.judge.model):  # fmt: skip
                    out.graded += 1
                    out.ratings[str(rating)] = out.ratings.get(str(rating), 0) + 1
                else:
                    out.rated_meanwhile += 1
            ctx.progress(done, len(candidates), f"graded {out.graded} of {len(candidates)}")
    if out.failed and not out.graded:
        raise ForgeError(f"judge_url: the judge graded none of the {out.failed} traces ({out.failures[0].reason}); check "
                         "judge_url, judge_model and judge_api_key_env (model_evaluate uses the same judge settings)")  # fmt: skip
    return out


TRACE_JUDGE = OrchestrationKind(JUDGE_KIND, JudgeArguments, TraceJudgement, judge_traces)
