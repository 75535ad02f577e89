"""job_links: which job an orchestration started as which step (migration 0006). A relation
of its own, apart from jobs.parent_id (job_resume's "repeat of")."""

from __future__ import annotations

import time
from dataclasses import dataclass

from forge_mcp.store import Store


@dataclass(frozen=True)
class ChildLink:
    parent_id: str
    step: str
    idempotency_key: str  # the child's key, in its owner's namespace: how the child is found again
    child_id: str | None  # None between the link's write and the child's queueing (or a crash there)


class ChildLinks:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, parent_id: str, step: str) -> ChildLink | None:
        row = await self._store.fetchone("SELECT * FROM job_links WHERE parent_id = ? AND step = ?", (parent_id, step))
        return _link(row) if row else None

    async def add(self, parent_id: str, step: str, idempotency_key: str) -> ChildLink:
        """Written before the child is submitted; an existing link for the step is kept as it is."""
        await self._store.execute(
            "INSERT OR IGNORE INTO job_links (parent_id, step, idempotency_key, created_at) VALUES (?, ?, ?, ?)",
            (parent_id, step, idempotency_key, time.time()),
        )
        link = await self.get(parent_id, step)
        assert link is not None
        return link

    async def set_child(self, parent_id: str, step: str, child_id: str) -> None:
        await self._store.execute(
            "UPDATE job_links SET child_id = ? WHERE parent_id = ? AND step = ?", (child_id, parent_id, step)
        )

    async def children(self, parent_id: str) -> list[ChildLink]:
        """In the order the steps were started. A link whose child_id was not filled in (a crash
        right after the submission) gets it from the child's idempotency key."""
        rows = await self._store.fetchall(
            "SELECT l.parent_id, l.step, l.idempotency_key, COALESCE(l.child_id, j.id) AS child_id FROM job_links l "
            "JOIN jobs p ON p.id = l.parent_id "
            "LEFT JOIN jobs j ON j.principal = p.principal AND j.idempotency_key = l.idempotency_key "
            "WHERE l.parent_id = ? ORDER BY l.created_at, l.rowid",
            (parent_id,),
        )
        return [_link(row) for row in rows]

    async def parent_of(self, child_id: str) -> ChildLink | None:
        row = await self._store.fetchone("SELECT * FROM job_links WHERE child_id = ?", (child_id,))
        return _link(row) if row else None


def _link(row: object) -> ChildLink:
    return ChildLink(parent_id=row["parent_id"], step=row["step"], idempotency_key=row["idempotency_key"],  # type: ignore[index]
                     child_id=row["child_id"])  # type: ignore[index]  # fmt: skip
