"""Compute targets in the workspace database (table compute_targets, migration 0012)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from forge_mcp.compute.models import RayConfig, SshConfig, StoredTarget, TargetKind
from forge_mcp.store import Store

ACTIVE_JOB_STATES = ("QUEUED", "RUNNING")


class ComputeRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, name: str, kind: TargetKind, config: SshConfig | RayConfig, *, principal: str,
                  created_at: float, probe: dict[str, Any] | None) -> bool:  # fmt: skip
        """False when the name is taken (nothing written)."""
        changed = await self._store.execute(
            "INSERT INTO compute_targets (name, kind, config, probe, probed_at, created_at, principal) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING",
            (name, kind, json.dumps(asdict(config)), json.dumps(probe) if probe else None,
             created_at if probe else None, created_at, principal),
        )  # fmt: skip
        return changed == 1

    async def get(self, name: str) -> StoredTarget | None:
        row = await self._store.fetchone("SELECT * FROM compute_targets WHERE name = ?", (name,))
        return StoredTarget.from_row(row) if row is not None else None

    async def list(self) -> list[StoredTarget]:
        return [StoredTarget.from_row(row) for row in await self._store.fetchall("SELECT * FROM compute_targets ORDER BY name")]

    async def record_probe(self, name: str, probe: dict[str, Any], at: float) -> None:
        await self._store.execute(
            "UPDATE compute_targets SET probe = ?, probed_at = ? WHERE name = ?", (json.dumps(probe), at, name)
        )

    async def remove_unless_busy(self, name: str) -> list[str]:
        """Delete the target unless jobs are queued or running there; the ids of those jobs."""
        async with self._store.transaction() as tx:
            marks = ", ".join("?" for _ in ACTIVE_JOB_STATES)
            busy = await tx.fetchall(
                f"SELECT id FROM jobs WHERE host = ? AND state IN ({marks}) ORDER BY created_at", (name, *ACTIVE_JOB_STATES)
            )
            if not busy:
                await tx.execute("DELETE FROM compute_targets WHERE name = ?", (name,))
            return [row["id"] for row in busy]
