"""The model index in the workspace database."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from forge_mcp.errors import Conflict, NotFound
from forge_mcp.models.records import ModelExport, ModelVersion
from forge_mcp.references import parse_reference
from forge_mcp.store import Store


class ModelRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, reference: str) -> ModelVersion:
        """'name' (the newest version) or 'name@vN'."""
        name, version = parse_reference(reference, "model", "model_list")
        if version is not None:
            row = await self._store.fetchone("SELECT * FROM models WHERE id = ?", (reference,))
        else:
            row = await self._store.fetchone("SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        if row is None:
            raise NotFound(f"model: no model {reference!r}; model_list shows what exists, model_register adds one")
        return ModelVersion.from_row(row)

    async def production(self, name: str) -> ModelVersion | None:
        row = await self._store.fetchone("SELECT * FROM models WHERE name = ? AND stage = 'production'", (name,))
        return ModelVersion.from_row(row) if row else None

    async def next_version(self, name: str) -> int:
        row = await self._store.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM models WHERE name = ?", (name,))
        return int(row["v"]) + 1 if row else 1

    async def insert(self, values: dict[str, Any], principal: str) -> ModelVersion:
        now = time.time()
        record = {**values, "stage": "registered", "created_at": now, "updated_at": now,
                  "spec": json.dumps(values.get("spec", {})), "metrics": json.dumps(values.get("metrics", {})),
                  "sweep": json.dumps(values["sweep"]) if values.get("sweep") else None}  # fmt: skip
        async with self._store.transaction() as tx:
            await tx.execute(f"INSERT INTO models ({', '.join(record)}) VALUES ({', '.join('?' for _ in record)})",
                             tuple(record.values()))  # fmt: skip
            await tx.execute("INSERT INTO model_transitions VALUES (?, NULL, 'registered', ?, 'registered', ?)",
                             (record["id"], principal, now))  # fmt: skip
        return await self.get(record["id"])

    async def move(self, model: ModelVersion, stage: str, principal: str, reason: str) -> ModelVersion:
        """One transaction: to production, the current production version is archived first;
        the partial unique index refuses a second production should two promotes race."""
        now = time.time()
        try:
            async with self._store.transaction() as tx:
                current = await tx.fetchone("SELECT stage FROM models WHERE id = ?", (model.id,))
                if current is None or current["stage"] != model.stage:
                    raise Conflict(f"model: {model.id} changed stage meanwhile; read it again with model_get")
                if stage == "production":
                    old = await tx.fetchone("SELECT id FROM models WHERE name = ? AND stage = 'production'", (model.name,))
                    if old is not None:
                        await tx.execute("UPDATE models SET stage = 'archived', updated_at = ? WHERE id = ?", (now, old["id"]))
                        await tx.execute("INSERT INTO model_transitions VALUES (?, 'production', 'archived', ?, ?, ?)",
                                         (old["id"], principal, f"replaced by {model.id}", now))  # fmt: skip
                await tx.execute("UPDATE models SET stage = ?, updated_at = ? WHERE id = ?", (stage, now, model.id))
                await tx.execute("INSERT INTO model_transitions VALUES (?, ?, ?, ?, ?, ?)",
                                 (model.id, model.stage, stage, principal, reason, now))  # fmt: skip
        except sqlite3.IntegrityError:
            raise Conflict(f"model: another version of {model.name} became production meanwhile; try again") from None
        return await self.get(model.id)

    async def add_metrics(self, model_id: str, metrics: dict[str, Any]) -> ModelVersion:
        """Merge evaluation results into a version's metrics (newer values win)."""
        async with self._store.transaction() as tx:
            row = await tx.fetchone("SELECT metrics FROM models WHERE id = ?", (model_id,))
            if row is None:
                raise NotFound(f"model: no model {model_id!r}")
            merged = {**json.loads(row["metrics"]), **metrics}
            await tx.execute("UPDATE models SET metrics = ?, updated_at = ? WHERE id = ?", (json.dumps(merged), time.time(), model_id))
        return await self.get(model_id)

    async def list(self, name: str | None = None, stage: str | None = None, limit: int = 50) -> list[ModelVersion]:
        where, params = [], []
        if name:
            where.append("name = ?")
            params.append(name)
        if stage:
            where.append("stage = ?")
            params.append(stage)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self._store.fetchall(f"SELECT * FROM models {clause} ORDER BY name, version DESC LIMIT ?", (*params, limit))
        return [ModelVersion.from_row(r) for r in rows]

    async def history(self, model_id: str) -> list[dict[str, Any]]:
        rows = await self._store.fetchall("SELECT * FROM model_transitions WHERE model_id = ? ORDER BY at", (model_id,))
        return [dict(r) for r in rows]

    async def add_export(self, export: ModelExport) -> ModelExport:
        values = {**export.model_dump(), "verification": json.dumps(export.verification)}
        async with self._store.transaction() as tx:
            await tx.execute(f"INSERT OR REPLACE INTO model_exports ({', '.join(values)}) VALUES ({', '.join('?' for _ in values)})",
                             tuple(values.values()))  # fmt: skip
        return export

    async def exports(self, model_id: str) -> list[ModelExport]:
        rows = await self._store.fetchall("SELECT * FROM model_exports WHERE model_id = ? ORDER BY key", (model_id,))
        return [ModelExport.from_row(r) for r in rows]
