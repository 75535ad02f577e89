"""The workspace database: sqlite through one aiosqlite connection that this class owns.

WAL journal, foreign keys on, numbered migrations (migrations/NNNN_name.sql) applied in
order inside a transaction each. Every write and every statement inside `transaction()`
goes through one lock, so a transaction opened by one coroutine never interleaves with
another's statements. `Store.fetchone` / `fetchall` outside a transaction read on a second,
read-only connection in the event loop's own thread: a read by key takes tens of
microseconds, less than the trip to aiosqlite's thread and back (and it does not queue
behind the writes). Under WAL such a read sees every transaction committed before it.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from forge_mcp.package_data import migration_files

BUSY_TIMEOUT_MS = 10_000
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

Params = Sequence[Any] | dict[str, Any]


class Transaction:
    """Statements inside `Store.transaction()`; committed together or not at all."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return int(cursor.lastrowid or 0)

    # A read is one trip to aiosqlite's thread (execute, fetch and close there), not three:
    # each trip wakes that thread and waits for the GIL, which dominated a job_status call.
    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """The first row, for queries that return at most one (by key, LIMIT 1, an aggregate)."""
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
        self._conn = conn
        await self._migrate()
        self._reader = _open_reader(self.path)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("Store is not open")
        return self._conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            conn = self._connection
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield Transaction(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self._lock:
            return await Transaction(self._connection).execute(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        if self._reader is None:  # while migrating
            async with self._lock:
                return await Transaction(self._connection).fetchone(sql, params)
        await asyncio.sleep(0)  # still a point where other tasks run and a cancel lands, as before
        cursor = self._reader.execute(sql, params)
        try:
            return cursor.fetchone()
        finally:
            cursor.close()  # an unfinished statement would hold its read snapshot open

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            async with self._lock:
                return await Transaction(self._connection).fetchall(sql, params)
        await asyncio.sleep(0)
        return self._reader.execute(sql, params).fetchall()

    async def schema_version(self) -> int:
        row = await self.fetchone("SELECT COALESCE(MAX(version), 0) AS v FROM schema_migrations")
        return int(row["v"]) if row else 0

    async def _migrate(self) -> None:
        await self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at REAL NOT NULL)"
        )
        current = await self.schema_version()
        for version, name, sql in _numbered(migration_files()):
            if version <= current:
                continue
            async with self.transaction() as tx:
                for statement in _statements(sql):
                    await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )


def _open_reader(path: Path) -> sqlite3.Connection:
    """The read-only connection that the event loop's thread reads on (autocommit: each
    SELECT is its own read transaction, so it sees the latest commit)."""
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    reader.row_factory = sqlite3.Row
    reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    reader.execute("PRAGMA foreign_keys = ON")
    reader.execute("PRAGMA query_only = ON")
    return reader


def _numbered(files: Iterable[Any]) -> list[tuple[int, str, str]]:
    out: list[tuple[int, str, str]] = []
    for f in files:
        match = _MIGRATION_NAME.match(f.name)
        if not match:
            raise RuntimeError(f"migration file {f.name!r} must be named NNNN_lower_snake.sql")
        out.append((int(match.group(1)), f.name, f.read_text()))
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return out


def _statements(sql: str) -> list[str]:
    """Split a migration into statements with sqlite's own notion of a complete statement."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(l.strip().startswith("--") for l in buffer.splitlines() if l.strip()):
        raise RuntimeError("a migration ends with an incomplete SQL statement (missing ';')")
    return statements
