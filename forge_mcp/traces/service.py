"""Traces for a caller: record one (PII masked before it is stored), list and read them, and
give them feedback (a rating, the answer that should have been given, labels). The trace tools
call this, and so does the chat operator for each turn, in-process, with the caller's
principal. As with jobs, a trace is its recorder's: anyone else sees and rates only their own,
an admin key (or the local operator) everyone's, and someone else's trace looks missing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import time
from collections import Counter
from typing import Any

from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.security.principal import Principal
from forge_mcp.traces.limits import (
    JUDGE_REASON_CHARS,
    MAX_CORRECTION_CHARS,
    MAX_LIST,
    MAX_NAME_CHARS,
    MAX_REF_CHARS,
    PREVIEW_CHARS,
    SOURCE,
)
from forge_mcp.traces.messages import Outcome
from forge_mcp.traces.models import TraceDetail, TraceFeedbackResult, TraceIn, TraceList, TraceRecorded, check_slugs
from forge_mcp.traces.redaction import redact_messages, redact_metadata, redact_text
from forge_mcp.traces.repository import TraceFilter, TracePosition, TraceRepository
from forge_mcp.traces.selection import TraceSelection

TRACE_ID_PREFIX = "tr_"
_SOURCE = re.compile(SOURCE)


class TraceService:
    def __init__(self, repository: TraceRepository) -> None:
        self._repo = repository

    async def record(self, principal: Principal, trace: TraceIn, *, source: str,
                     idempotency_key: str | None = None) -> TraceRecorded:  # fmt: skip
        """Stores `trace` as `principal`'s, its PII masked. With `idempotency_key`, sending the
        same trace again returns the first one's id instead of storing it twice."""
        if not _SOURCE.match(source):
            raise InvalidArguments(f"source: {source[:40]!r} is not a source name; use a short lowercase slug such as "
                                   "chat, a2a or external")  # fmt: skip
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= MAX_NAME_CHARS:
            raise InvalidArguments(f"idempotency_key: give 1-{MAX_NAME_CHARS} characters, or leave it out")
        messages, found = await asyncio.to_thread(redact_messages, trace.messages)
        metadata, in_metadata = redact_metadata(trace.metadata)
        found.update(in_metadata)
        now = time.time()
        usage = trace.usage
        values = {
            "id": f"{TRACE_ID_PREFIX}{int(now * 1000):x}{secrets.token_hex(4)}", "created_at": now, "source": source,
            "principal": principal.name, "thread": trace.thread, "model": trace.model, "outcome": trace.outcome,
            "latency_ms": trace.latency_ms, "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None, "message_count": len(messages),
            "tool_call_count": trace.tool_call_count(), "preview": _preview(messages), "messages": messages,
            "tags": trace.tags, "metadata": metadata, "pii": dict(sorted(found.items())),
            "idempotency_key": idempotency_key, "fingerprint": _fingerprint(trace, source),
        }  # fmt: skip
        trace_id, new = await self._repo.insert(values)
        if not new:
            earlier = await self.get(principal, trace_id)
            return TraceRecorded(id=earlier.id, message_count=earlier.message_count, tool_call_count=earlier.tool_call_count,
                                 pii=earlier.pii, redacted=bool(earlier.pii))  # fmt: skip
        return TraceRecorded(id=trace_id, message_count=len(messages), tool_call_count=values["tool_call_count"],
                             pii=values["pii"], redacted=bool(found))  # fmt: skip

    async def list(
        self,
        principal: Principal,
        *,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
        model: str | None = None,
        outcome: Outcome | None = None,
        thread: str | None = None,
        tags: list[str] | None = None,
        min_rating: int | None = None,
        max_rating: int | None = None,
        has_feedback: bool | None = None,
        min_judge_rating: int | None = None,
        limit: int = 20,
        cursor: str | None = None,
    ) -> TraceList:
        """Summaries, newest first, of the traces `principal` may see that match every filter
        given (each of `tags` too); `cursor` is an earlier page's next_cursor."""
        if since is not None and until is not None and since >= until:
            raise InvalidArguments(f"since: {since} is not before until ({until}); both are Unix times in seconds")
        ratings = (("min_rating", min_rating), ("max_rating", max_rating), ("min_judge_rating", min_judge_rating))
        for field, rating in ratings:
            if rating is not None and not 1 <= rating <= 5:
                raise InvalidArguments(f"{field}: {rating} is not between 1 (bad) and 5 (good)")
        if min_rating is not None and max_rating is not None and min_rating > max_rating:
            raise InvalidArguments(f"min_rating: {min_rating} is above max_rating ({max_rating}); swap them")
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArguments(f"limit: {limit} is not between 1 and {MAX_LIST}")
        where = TraceFilter(owner=_owner(principal), since=since, until=until, source=source, model=model, outcome=outcome,
                            thread=thread, tags=tuple(check_slugs("tags", tags or [])), min_rating=min_rating,
                            max_rating=max_rating, has_feedback=has_feedback, min_judge_rating=min_judge_rating)  # fmt: skip
        after = await self._cursor(principal, cursor) if cursor is not None else None
        page = await self._repo.list(where, limit + 1, after)
        return TraceList(traces=page[:limit], total=await self._repo.count(where),
                         next_cursor=page[limit - 1].id if len(page) > limit else None)  # fmt: skip

    async def select(self, principal: Principal, selection: TraceSelection, *, limit: int, max_chars: int | None = None,
                     **conditions: Any) -> list[TraceDetail]:  # fmt: skip
        """Whole traces `principal` may see that match `selection` (and the repository's
        `conditions`, e.g. human_rated=False), newest first: at most `limit`, and with `max_chars`
        no more once their messages (as JSON) hold that many characters."""
        return await self._repo.details(selection.where(_owner(principal), **conditions), limit, max_chars)

    async def count(self, principal: Principal, selection: TraceSelection, **conditions: Any) -> int:
        return await self._repo.count(selection.where(_owner(principal), **conditions))

    async def judge_candidates(self, principal: Principal, selection: TraceSelection, *, limit: int,
                               regrade_before: float | None = None) -> list[TraceDetail]:  # fmt: skip
        """Answered traces nobody rated that a judge has not graded yet (with `regrade_before`:
        or graded before that time), newest first, at most `limit`."""
        return await self._repo.details(_ungraded(principal, selection, regrade_before), limit)

    async def count_judge_candidates(self, principal: Principal, selection: TraceSelection, *,
                                     regrade_before: float | None = None) -> int:  # fmt: skip
        return await self._repo.count(_ungraded(principal, selection, regrade_before))

    async def record_judgement(self, principal: Principal, trace_id: str, *, rating: int, reason: str,
                               model: str) -> bool:  # fmt: skip
        """A judge's grade (1-5) on a trace nobody rated, kept apart from a person's rating, which it
        never touches: False, and nothing written, when a person has rated the trace meanwhile."""
        position = await self._repo.locate(trace_id)
        if position is None or not _sees(principal, position.principal):
            raise _no_such_trace(trace_id)
        if not 1 <= rating <= 5:
            raise InvalidArguments(f"rating: {rating} is not between 1 (bad) and 5 (good)")
        return await self._repo.judgement(trace_id, time.time(), rating=rating, reason=reason[:JUDGE_REASON_CHARS],
                                          model=model[:MAX_REF_CHARS])  # fmt: skip

    async def get(self, principal: Principal, trace_id: str) -> TraceDetail:
        """The whole trace, messages included."""
        trace = await self._repo.get(trace_id)
        if trace is None or not _sees(principal, trace.principal):
            raise _no_such_trace(trace_id)
        return trace

    async def feedback(self, principal: Principal, trace_id: str, *, rating: int | None = None,
                       correction: str | None = None, labels: list[str] | None = None) -> TraceFeedbackResult:  # fmt: skip
        """Rates a trace (1 bad .. 5 good), gives the answer it should have ended with (PII masked),
        or replaces its labels; what is not given stays as it was."""
        position = await self._repo.locate(trace_id)
        if position is None or not _sees(principal, position.principal):
            raise _no_such_trace(trace_id)
        if rating is None and correction is None and labels is None:
            raise InvalidArguments("rating, correction or labels: give at least one (rating 1 bad to 5 good; correction "
                                   "the answer the assistant should have given; labels short slugs such as wrong-tool)")  # fmt: skip
        if rating is not None and not 1 <= rating <= 5:
            raise InvalidArguments(f"rating: {rating} is not between 1 (bad) and 5 (good)")
        found: Counter[str] = Counter()
        if correction is not None:
            if not correction.strip():
                raise InvalidArguments("correction: it is empty; give the answer the assistant should have given")
            if len(correction) > MAX_CORRECTION_CHARS:
                raise InvalidArguments(f"correction: {len(correction):,} characters is over the limit of "
                                       f"{MAX_CORRECTION_CHARS:,}; give the final answer only")  # fmt: skip
            correction, found = await asyncio.to_thread(redact_text, correction)
        checked = check_slugs("labels", labels) if labels is not None else None
        stored = await self._repo.feedback(trace_id, time.time(), rating=rating, correction=correction, labels=checked)
        return TraceFeedbackResult(**stored, pii=dict(sorted(found.items())))

    async def _cursor(self, principal: Principal, cursor: str) -> TracePosition:
        position = await self._repo.locate(cursor)
        if position is None or not _sees(principal, position.principal):
            raise InvalidArguments(f"cursor: {cursor[:64]!r} is not a trace from an earlier page; pass next_cursor as "
                                   "trace_list gave it, or leave cursor out to start from the newest")  # fmt: skip
        return position


def _sees(principal: Principal, owner: str) -> bool:
    return principal.sees_everything or owner == principal.name


def _owner(principal: Principal) -> str | None:
    return None if principal.sees_everything else principal.name


def _ungraded(principal: Principal, selection: TraceSelection, regrade_before: float | None) -> TraceFilter:
    """Answered, nobody's rating, and no judge's grade (or one older than `regrade_before`)."""
    judged: dict[str, Any] = {"judged_before": regrade_before} if regrade_before is not None else {"judged": False}
    answered = selection.model_copy(update={"outcome": "answered"})
    return answered.where(_owner(principal), human_rated=False, **judged)


def _no_such_trace(trace_id: str) -> NotFound:
    """The one answer for an unknown id and for someone else's trace alike, so ids do not leak."""
    return NotFound(f"trace_id: no trace {trace_id[:64]!r}; trace_list shows the traces you can see")


def _preview(messages: list[dict[str, object]]) -> str:
    """The first user message on one line, at most PREVIEW_CHARS characters."""
    first = next(m["content"] for m in messages if m["role"] == "user")
    text = " ".join(p["text"] for p in first if isinstance(p, dict)) if isinstance(first, list) else str(first or "")
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _fingerprint(trace: TraceIn, source: str) -> str:
    payload = json.dumps({"source": source, "trace": trace.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()
