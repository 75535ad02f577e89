"""Jobs in the workspace database. Every state change goes through `transition`, which
writes the new state and its row in job_transitions in one transaction."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Any

from forge_mcp.errors import Conflict, NotFound
from forge_mcp.jobs.models import Job, MetricPoint, MetricSeries
from forge_mcp.jobs.states import ALLOWED, JobState
from forge_mcp.store import Store, Transaction


class JobRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        return self._store.transaction()

    async def insert(self, tx: Transaction, values: dict[str, Any]) -> None:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await tx.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(values.values()))
        await tx.execute(
            "INSERT INTO job_transitions (job_id, from_state, to_state, reason, at) VALUES (?, NULL, ?, ?, ?)",
            (values["id"], values["state"], "submitted", values["created_at"]),
        )

    async def get(self, job_id: str) -> Job:
        row = await self._store.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise no_such_job(job_id)
        return Job.from_row(row)

    async def find_by_key(self, tx: Transaction, principal: str, key: str) -> Job | None:
        row = await tx.fetchone("SELECT * FROM jobs WHERE principal = ? AND idempotency_key = ?", (principal, key))
        return Job.from_row(row) if row else None

    async def count_queued(self, tx: Transaction, principal: str) -> int:
        row = await tx.fetchone("SELECT COUNT(*) FROM jobs WHERE principal = ? AND state = 'QUEUED'", (principal,))
        return int(row[0]) if row else 0

    async def list(
        self, states: Iterable[JobState] = (), kind: str | None = None, limit: int = 50, *, owner: str | None = None
    ) -> list[Job]:
        """Newest first; with `owner`, only the jobs that principal started."""
        clauses, params = [], []
        if owner is not None:
            clauses.append("principal = ?")
            params.append(owner)
        states = list(states)
        if states:
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(s.value for s in states)
        if kind:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._store.fetchall(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit)
        )
        return [Job.from_row(r) for r in rows]

    async def queued_in_order(self) -> list[Job]:
        rows = await self._store.fetchall(
            "SELECT * FROM jobs WHERE state = 'QUEUED' ORDER BY priority DESC, created_at, id"
        )
        return [Job.from_row(r) for r in rows]

    async def transition(
        self, job_id: str, to: JobState, *, reason: str | None = None, **fields: Any
    ) -> Job:
        """Move a job to `to`, setting `fields` too; refuses transitions the state machine forbids."""
        now = time.time()
        async with self._store.transaction() as tx:
            row = await tx.fetchone("SELECT state FROM jobs WHERE id = ?", (job_id,))
            if row is None:
                raise NotFound(f"job_id: no job {job_id!r}")
            current = JobState(row["state"])
            if to not in ALLOWED[current]:
                raise Conflict(f"job {job_id} is {current.value} and cannot become {to.value}")
            if to.terminal:
                fields.setdefault("finished_at", now)
            updates = {"state": to.value, **fields}
            if reason is not None:
                updates["reason"] = reason
            assignments = ", ".join(f"{name} = ?" for name in updates)
            await tx.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*updates.values(), job_id))
            await tx.execute(
                "INSERT INTO job_transitions (job_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)",
                (job_id, current.value, to.value, reason, now),
            )
        return await self.get(job_id)

    async def update(self, job_id: str, **fields: Any) -> None:
        """Non-state fields only (progress, heartbeat, cancel flag)."""
        assert "state" not in fields
        assignments = ", ".join(f"{name} = ?" for name in fields)
        await self._store.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", (*fields.values(), job_id))

    async def cancel_requested_ids(self) -> set[str]:
        rows = await self._store.fetchall("SELECT id FROM jobs WHERE state = 'RUNNING' AND cancel_requested = 1")
        return {r["id"] for r in rows}

    async def transitions(self, job_id: str) -> list[tuple[str | None, str, str | None]]:
        rows = await self._store.fetchall(
            "SELECT from_state, to_state, reason FROM job_transitions WHERE job_id = ? ORDER BY id", (job_id,)
        )
        return [(r["from_state"], r["to_state"], r["reason"]) for r in rows]

    async def add_metrics(self, job_id: str, points: list[tuple[str, float, float, float]]) -> None:
        if not points:
            return
        async with self._store.transaction() as tx:
            for name, step, value, at in points:
                await tx.execute(
                    "INSERT OR REPLACE INTO job_metrics (job_id, name, step, value, at) VALUES (?, ?, ?, ?, ?)",
                    (job_id, name, step, value, at),
                )

    async def metrics(self, job_id: str, names: list[str] | None, max_points: int) -> list[MetricSeries]:
        rows = await self._store.fetchall(
            "SELECT name, step, value FROM job_metrics WHERE job_id = ? ORDER BY name, step", (job_id,)
        )
        series: dict[str, list[MetricPoint]] = {}
        for row in rows:
            if names and row["name"] not in names:
                continue
            series.setdefault(row["name"], []).append(MetricPoint(step=row["step"], value=row["value"]))
        out = []
        for name, points in series.items():
            stride = max(1, -(-len(points) // max_points))  # keep the shape, bound the size
            kept = points[::stride]
            if kept[-1] is not points[-1]:
                kept.append(points[-1])
            out.append(MetricSeries(name=name, points=kept, truncated=stride > 1))
        return out

    async def latest_result(self, kind: str) -> Job | None:
        row = await self._store.fetchone(
            "SELECT * FROM jobs WHERE kind = ? AND state = 'SUCCEEDED' ORDER BY finished_at DESC LIMIT 1", (kind,)
        )
        return Job.from_row(row) if row else None

    async def counts(self, *, owner: str | None = None) -> dict[str, int]:
        where, params = ("WHERE principal = ?", (owner,)) if owner is not None else ("", ())
        rows = await self._store.fetchall(f"SELECT state, COUNT(*) AS n FROM jobs {where} GROUP BY state", params)
        return {r["state"]: int(r["n"]) for r in rows}


def no_such_job(job_id: str) -> NotFound:
    """The one answer for an unknown id and for someone else's job alike, so ids do not leak."""
    return NotFound(f"job_id: no job {job_id!r}; job_list shows the jobs that exist")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
