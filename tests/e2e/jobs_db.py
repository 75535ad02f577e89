"""Reading the job table of a live server's workspace."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psutil

from tests.polling import poll_until


def read_jobs(home: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(f"file:{home / 'forge.db'}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        return db.execute(
            "SELECT id, kind, executor, state, reason, pid, pid_started_at, attempt, progress_done, idempotency_key FROM jobs"
        ).fetchall()


def read_links(home: Path, parent_id: str) -> dict[str, str]:
    """An orchestration's children: step -> child job id (job_links)."""
    with sqlite3.connect(f"file:{home / 'forge.db'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT step, child_id FROM job_links WHERE parent_id = ?", (parent_id,)).fetchall()
    return {step: child for step, child in rows if child}


def alive(pid: int | None, started_at: float | None) -> bool:
    try:
        process = psutil.Process(pid) if pid else None
        return bool(process) and abs(process.create_time() - (started_at or 0)) < 1 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


__all__ = ["alive", "poll_until", "read_jobs", "read_links"]
