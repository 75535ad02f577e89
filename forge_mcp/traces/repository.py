"""Traces in the workspace database: a row each (its messages as JSON), its tags also in
trace_tags where the tag filter looks, and feedback written onto the row. List queries read
the summary columns only, never the messages."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, NamedTuple

from forge_mcp.errors import Conflict
from forge_mcp.store import Store
from forge_mcp.traces.models import TraceDetail, TraceSummary

SUMMARY_COLUMNS = ("id, created_at, source, principal, thread, model, outcome, latency_ms, prompt_tokens, "
                   "completion_tokens, message_count, tool_call_count, preview, tags, rating, labels, "
                   "correction IS NOT NULL AS corrected, feedback_at, judge_rating, judge_reason, judge_model, judged_at")  # fmt: skip
DETAIL_COLUMNS = f"{SUMMARY_COLUMNS}, messages, metadata, pii, correction"
DETAIL_PAGE = 200  # whole traces read at a time
_JSON = ("messages", "tags", "metadata", "pii", "labels")
_TEXT = ("source", "principal", "thread", "model", "preview", "correction", "idempotency_key", "judge_reason",
         "judge_model")  # fmt: skip


class TracePosition(NamedTuple):
    created_at: float
    id: str
    principal: str


@dataclass(frozen=True)
class TraceFilter:
    """What trace_list narrows by; every given condition must hold (each tag too)."""

    owner: str | None = None  # None: everyone's
    since: float | None = None
    until: float | None = None
    source: str | None = None
    model: str | None = None
    outcome: str | None = None
    thread: str | None = None
    tags: tuple[str, ...] = ()
    min_rating: int | None = None
    max_rating: int | None = None
    has_feedback: bool | None = None
    min_judge_rating: int | None = None
    human_rated: bool | None = None  # a person's rating: given (True) or not (False)
    judged: bool | None = None  # a judge's grade: given (True) or not (False)
    judged_before: float | None = None  # no judge's grade, or one older than this
    judged_since: float | None = None  # a judge's grade at this time or later

    def where(self) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        equal = (("principal", self.owner), ("source", self.source), ("model", self.model), ("outcome", self.outcome),
                 ("thread", self.thread))  # fmt: skip
        bounds = (("created_at >= ?", self.since), ("created_at < ?", self.until), ("rating >= ?", self.min_rating),
                  ("rating <= ?", self.max_rating), ("judge_rating >= ?", self.min_judge_rating),
                  ("(judged_at IS NULL OR judged_at < ?)", self.judged_before), ("judged_at >= ?", self.judged_since))  # fmt: skip
        for clause, value in [(f"{column} = ?", value) for column, value in equal] + list(bounds):
            if value is not None:
                clauses.append(clause)
                params.append(value)
        given_or_not = (("feedback_at", self.has_feedback), ("rating", self.human_rated), ("judged_at", self.judged))
        for column, given in given_or_not:
            if given is not None:
                clauses.append(f"{column} IS {'NOT ' if given else ''}NULL")
        for tag in self.tags:
            clauses.append("id IN (SELECT trace_id FROM trace_tags WHERE tag = ?)")
            params.append(tag)
        return clauses, params


class TraceRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def insert(self, values: dict[str, Any]) -> tuple[str, bool]:
        """(id, True) for a new trace; (the earlier one's id, False) when its owner sent the same
        idempotency key with the same trace before. The same key with another trace is a conflict."""
        row = {key: _stored(key, value) for key, value in values.items()}
        key = values.get("idempotency_key")
        async with self._store.transaction() as tx:
            if key is not None:
                earlier = await tx.fetchone("SELECT id, fingerprint FROM traces WHERE principal = ? AND idempotency_key = ?",
                                            (row["principal"], row["idempotency_key"]))  # fmt: skip
                if earlier is not None and earlier["fingerprint"] == values["fingerprint"]:
                    return earlier["id"], False
                if earlier is not None:
                    raise Conflict(f"idempotency_key: {key!r} was sent before with another trace ({earlier['id']}); use a "
                                   "new key for a new trace")  # fmt: skip
            await tx.execute(
                f"INSERT INTO traces ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values())
            )
            for tag in values.get("tags", ()):
                await tx.execute("INSERT INTO trace_tags (tag, trace_id) VALUES (?, ?)", (tag, values["id"]))
        return values["id"], True

    async def get(self, trace_id: str) -> TraceDetail | None:
        row = await self._store.fetchone(f"SELECT {DETAIL_COLUMNS} FROM traces WHERE id = ?", (trace_id,))
        return TraceDetail.from_row(row) if row else None

    async def locate(self, trace_id: str) -> TracePosition | None:
        """Where a trace stands in the newest-first order, and whose it is (reads no messages)."""
        row = await self._store.fetchone("SELECT created_at, id, principal FROM traces WHERE id = ?", (trace_id,))
        return TracePosition(row["created_at"], row["id"], row["principal"]) if row else None

    async def list(self, where: TraceFilter, limit: int, after: TracePosition | None = None) -> list[TraceSummary]:
        """Newest first; with `after`, only the traces that come after it in that order."""
        clauses, params = where.where()
        if after is not None:
            clauses.append("(created_at, id) < (?, ?)")
            params += [after.created_at, after.id]
        sql = f"SELECT {SUMMARY_COLUMNS} FROM traces {_where(clauses)} ORDER BY created_at DESC, id DESC LIMIT ?"
        return [TraceSummary.from_row(row) for row in await self._store.fetchall(sql, (*params, limit))]

    async def details(self, where: TraceFilter, limit: int, max_chars: int | None = None) -> list[TraceDetail]:
        """Whole traces, messages included, newest first: at most `limit`, read a page at a time,
        and with `max_chars` none past the one whose messages bring their JSON over that many characters."""
        clauses, params = where.where()
        rows: list[Any] = []
        chars = 0
        while len(rows) < limit and (max_chars is None or chars < max_chars):
            after = ["(created_at, id) < (?, ?)"] if rows else []
            sql = f"SELECT {DETAIL_COLUMNS} FROM traces {_where(clauses + after)} ORDER BY created_at DESC, id DESC LIMIT ?"
            bound = (rows[-1]["created_at"], rows[-1]["id"]) if rows else ()
            page = await self._store.fetchall(sql, (*params, *bound, min(DETAIL_PAGE, limit - len(rows))))
            for row in page:
                if max_chars is not None and chars >= max_chars:
                    break
                chars += len(row["messages"])
                rows.append(row)
            if len(page) < DETAIL_PAGE:
                break
        return await asyncio.to_thread(lambda: [TraceDetail.from_row(row) for row in rows])  # JSON decoded off the loop

    async def count(self, where: TraceFilter) -> int:
        clauses, params = where.where()
        row = await self._store.fetchone(f"SELECT COUNT(*) AS n FROM traces {_where(clauses)}", params)
        return int(row["n"]) if row else 0

    async def feedback(self, trace_id: str, at: float, **given: Any) -> dict[str, Any]:
        """Writes the given fields (rating, correction, labels) and feedback_at; the others stay.
        Returns the trace's feedback as it now stands."""
        updates = {key: _stored(key, value) for key, value in given.items() if value is not None} | {"feedback_at": at}
        assignments = ", ".join(f"{key} = ?" for key in updates)
        async with self._store.transaction() as tx:
            await tx.execute(f"UPDATE traces SET {assignments} WHERE id = ?", (*updates.values(), trace_id))
            row = await tx.fetchone(
                "SELECT id, rating, correction, labels, feedback_at FROM traces WHERE id = ?", (trace_id,)
            )
        assert row is not None  # traces are never deleted
        return {**dict(row), "labels": json.loads(row["labels"])}


    async def judgement(self, trace_id: str, at: float, *, rating: int, reason: str, model: str) -> bool:
        """Writes a judge's grade onto a trace nobody rated; False (nothing written) once a person has."""
        changed = await self._store.execute(
            "UPDATE traces SET judge_rating = ?, judge_reason = ?, judge_model = ?, judged_at = ? WHERE id = ? AND rating IS NULL",
            (rating, _stored("judge_reason", reason), _stored("judge_model", model), at, trace_id),
        )
        return changed == 1


def _where(clauses: list[str]) -> str:
    return f"WHERE {' AND '.join(clauses)}" if clauses else ""


def _stored(key: str, value: Any) -> Any:
    """JSON columns as (ASCII) JSON; text with a lone surrogate, which sqlite cannot store, with '?' for it."""
    if key in _JSON:
        return json.dumps(value)
    if key in _TEXT and isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    return value
