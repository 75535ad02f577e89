"""Reads outside a transaction run on the store's read-only connection in the event loop's
thread: they see every committed transaction, never another coroutine's uncommitted one,
do not wait for it, and cannot write."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from forge_mcp.store import Store


async def test_a_read_sees_commits_only_and_does_not_queue_behind_a_transaction(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        await store.execute("CREATE TABLE t (x INTEGER)")
        inserted, release = asyncio.Event(), asyncio.Event()

        async def writer() -> None:
            async with store.transaction() as tx:
                await tx.execute("INSERT INTO t VALUES (1)")
                inserted.set()
                await release.wait()

        task = asyncio.create_task(writer())
        await asyncio.wait_for(inserted.wait(), 10)
        # The transaction is open and holds the store's lock: the read answers anyway, from the last commit.
        assert (await asyncio.wait_for(store.fetchone("SELECT COUNT(*) FROM t"), 10))[0] == 0
        release.set()
        await task
        assert (await store.fetchone("SELECT COUNT(*) FROM t"))[0] == 1
        assert [r["x"] for r in await store.fetchall("SELECT x FROM t")] == [1]


async def test_reads_run_on_the_loop_thread_and_cannot_write(tmp_path: Path) -> None:
    async with Store(tmp_path / "forge.db") as store:
        seen = []
        store._reader.set_trace_callback(lambda _: seen.append(threading.get_ident()))  # type: ignore[union-attr]
        await store.fetchone("SELECT 1")
        assert seen == [threading.get_ident()]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await store.fetchall("CREATE TABLE nope (x INTEGER)")
