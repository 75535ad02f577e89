"""The workspace database: WAL, foreign keys, numbered migrations, atomic transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from forge_mcp.package_data import migration_files
from forge_mcp.store import Store


async def test_opens_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        assert (await store.fetchone("PRAGMA journal_mode"))[0] == "wal"
        assert (await store.fetchone("PRAGMA foreign_keys"))[0] == 1


async def test_applies_every_migration_once(tmp_path: Path) -> None:
    path = tmp_path / "forge.db"
    async with Store(path) as store:
        assert await store.schema_version() == len(migration_files())
    async with Store(path) as store:  # reopening applies nothing twice
        rows = await store.fetchall("SELECT version FROM schema_migrations")
        assert [r["version"] for r in rows] == list(range(1, len(migration_files()) + 1))


async def test_transaction_rolls_back_on_error(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        await store.execute("CREATE TABLE t (x INTEGER)")
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                raise RuntimeError("boom")
        assert (await store.fetchone("SELECT COUNT(*) FROM t"))[0] == 0
        async with store.transaction() as tx:
            await tx.execute("INSERT INTO t VALUES (2)")
        assert (await store.fetchone("SELECT COUNT(*) FROM t"))[0] == 1


async def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        await store.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        await store.execute("CREATE TABLE child (pid INTEGER REFERENCES parent(id))")
        with pytest.raises(sqlite3.IntegrityError):
            await store.execute("INSERT INTO child VALUES (42)")


async def test_integrity_check_is_ok(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        assert (await store.fetchone("PRAGMA integrity_check"))[0] == "ok"
