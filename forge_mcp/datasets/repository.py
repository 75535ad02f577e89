"""The dataset index in the workspace database."""

from __future__ import annotations

import json
import time
from typing import Any

from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.errors import NotFound
from forge_mcp.references import parse_reference
from forge_mcp.store import Store


class DatasetRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, reference: str) -> DatasetInfo:
        """'name' (the newest version) or 'name@vN'."""
        name, version = parse_reference(reference, "dataset", "dataset_list")
        if version is not None:
            row = await self._store.fetchone("SELECT * FROM datasets WHERE id = ?", (reference,))
        else:
            row = await self._store.fetchone("SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT 1", (name,))
        if row is None:
            raise NotFound(f"dataset: no dataset {reference!r}; dataset_list shows what exists, dataset_import adds one")
        return DatasetInfo.from_row(row)

    async def find_content(self, name: str, fingerprint: str) -> DatasetInfo | None:
        row = await self._store.fetchone(
            "SELECT * FROM datasets WHERE name = ? AND fingerprint = ? ORDER BY version LIMIT 1", (name, fingerprint)
        )
        return DatasetInfo.from_row(row) if row else None

    async def next_version(self, name: str) -> int:
        row = await self._store.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM datasets WHERE name = ?", (name,))
        return int(row["v"]) + 1 if row else 1

    async def insert(self, values: dict[str, Any]) -> DatasetInfo:
        record = {**values, "created_at": values.get("created_at", time.time())}
        for key in ("schema", "source", "steps", "report"):
            record[key] = json.dumps(record.get(key, [] if key in ("schema", "steps") else {}))
        columns = ", ".join(record)
        marks = ", ".join("?" for _ in record)
        await self._store.execute(f"INSERT INTO datasets ({columns}) VALUES ({marks})", tuple(record.values()))
        return await self.get(record["id"])

    async def list(self, name: str | None = None, limit: int = 50) -> list[DatasetInfo]:
        if name:
            rows = await self._store.fetchall(
                "SELECT * FROM datasets WHERE name = ? ORDER BY version DESC LIMIT ?", (name, limit)
            )
        else:
            rows = await self._store.fetchall("SELECT * FROM datasets ORDER BY created_at DESC LIMIT ?", (limit,))
        return [DatasetInfo.from_row(r) for r in rows]

    async def count(self) -> int:
        row = await self._store.fetchone("SELECT COUNT(*) FROM datasets")
        return int(row[0]) if row else 0
