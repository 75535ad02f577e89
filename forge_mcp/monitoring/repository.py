"""The monitor's samples in the workspace database (table system_samples, migration 0013)."""

from __future__ import annotations

import json
import sqlite3

from forge_mcp.monitoring.samples import GpuSample, HostSample
from forge_mcp.store import Store

COLUMNS = "at, cpu_percent, ram_used_bytes, ram_total_bytes, disk_free_bytes, disk_total_bytes, gpus"


class SampleRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def add(self, samples: dict[str, HostSample], *, prune_before: float) -> int:
        """Write one round (host -> sample) and delete every row older than `prune_before`,
        in one transaction: the table never holds more than the retention. Rows deleted."""
        async with self._store.transaction() as tx:
            for host, sample in samples.items():
                await tx.execute(
                    f"INSERT INTO system_samples (host, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (host, sample.unix_time_s, sample.cpu_percent, sample.ram_used_bytes, sample.ram_total_bytes,
                     sample.disk_free_bytes, sample.disk_total_bytes,
                     json.dumps([gpu.model_dump() for gpu in sample.gpus])),
                )  # fmt: skip
            return await tx.execute("DELETE FROM system_samples WHERE at < ?", (prune_before,))

    async def series(self, host: str, since: float) -> list[HostSample]:
        rows = await self._store.fetchall(
            f"SELECT {COLUMNS} FROM system_samples WHERE host = ? AND at >= ? ORDER BY at", (host, since)
        )
        return [_sample(row) for row in rows]

    async def last_seen(self, host: str) -> float | None:
        row = await self._store.fetchone("SELECT MAX(at) AS at FROM system_samples WHERE host = ?", (host,))
        return row["at"] if row is not None else None

    async def latest_since(self, since: float) -> dict[str, HostSample]:
        """Each host's newest sample taken at `since` or later (a read of the last few rows)."""
        rows = await self._store.fetchall(f"SELECT host, {COLUMNS} FROM system_samples WHERE at >= ? ORDER BY at", (since,))
        return {row["host"]: _sample(row) for row in rows}

    async def count(self, host: str | None = None) -> int:
        where, params = ("WHERE host = ?", (host,)) if host is not None else ("", ())
        row = await self._store.fetchone(f"SELECT COUNT(*) AS n FROM system_samples {where}", params)
        return int(row["n"]) if row is not None else 0


def _sample(row: sqlite3.Row) -> HostSample:
    return HostSample(
        unix_time_s=row["at"],
        cpu_percent=row["cpu_percent"],
        ram_used_bytes=row["ram_used_bytes"],
        ram_total_bytes=row["ram_total_bytes"],
        disk_free_bytes=row["disk_free_bytes"],
        disk_total_bytes=row["disk_total_bytes"],
        gpus=[GpuSample.model_validate(gpu) for gpu in json.loads(row["gpus"])],
    )
