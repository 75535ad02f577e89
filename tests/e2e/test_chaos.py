"""Crash recovery under fire: kill -9 the server (and sometimes every worker with it) at
random moments while jobs run, restart it, and check that every job ends honestly —
SUCCEEDED (adopted or retried) or FAILED(server_restart) — that nothing stays RUNNING
without a live process, that the database passes its integrity check, and that no job
process is left behind. Every other iteration the workload is an orchestration (the test
orchestration: three one-GPU children, a and b in parallel, then c, on one GPU slot) and
the kill lands while it waits on its children: the restarted server re-attaches it, each
step's job exists once, and it succeeds exactly when its children do. Also: kill -9 one
worker under a live server."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.e2e.jobs_db import alive, poll_until, read_jobs, read_links

pytestmark = pytest.mark.e2e

ITERATIONS_PER_TEST = 5
SETTLE_S = 60.0
MOMENTS = ("queued", "first_running", "mid_progress", "one_finished")
FINAL_OK = {("SUCCEEDED", "completed"), ("FAILED", "server_restart")}
# The orchestration iterations' moments, all while it waits on its children.
ORCHESTRATION_MOMENTS = ("child_running", "child_finished", "last_step")
ORCHESTRATION_FINAL_OK = {("SUCCEEDED", "completed"), ("FAILED", "child_failed")}
# Test kinds on (the test orchestration, test_job_start) and one GPU slot for its children.
SERVER_ENV = {"FORGE_TEST_JOB_KINDS": "1", "FORGE_GPU_SLOTS": "1"}


def reach_moment(home: Path, moment: str, job_ids: list[str]) -> None:
    """Wait (bounded) for the chosen moment of the jobs' lives; that is when the kill lands."""
    def states() -> list[sqlite3.Row]:
        return [r for r in read_jobs(home) if r["id"] in job_ids]

    checks = {
        "queued": lambda: True,
        "first_running": lambda: any(r["state"] == "RUNNING" and r["pid"] for r in states()),
        "mid_progress": lambda: any((r["progress_done"] or 0) >= 1 for r in states()),
        "one_finished": lambda: any(r["state"] == "SUCCEEDED" for r in states()),
    }
    poll_until(checks[moment], 30, f"moment {moment}")


async def submit(url: str, count: int, rng: random.Random) -> list[str]:
    async with Client(f"{url}/mcp/") as client:
        ids = []
        for _ in range(count):
            seconds = round(rng.uniform(0.3, 1.2), 2)  # a test_sleep of that long, reporting progress as it goes
            result = await client.call_tool("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": seconds}})
            assert not result.is_error, result.content
            ids.append(result.structured_content["job_id"])
        return ids


async def submit_orchestration(url: str, rng: random.Random) -> str:
    async with Client(f"{url}/mcp/") as client:
        arguments = {"seconds": round(rng.uniform(0.3, 0.8), 2)}
        result = await client.call_tool("test_job_start", {"kind": "test_orchestration", "arguments": arguments})
        assert not result.is_error, result.content
        return result.structured_content["job_id"]


def reach_orchestration_moment(home: Path, moment: str, orchestration_id: str) -> None:
    """Wait (bounded) until the orchestration waits on its children at the chosen moment."""
    def children() -> list[sqlite3.Row]:
        ids = set(read_links(home, orchestration_id).values())
        return [r for r in read_jobs(home) if r["id"] in ids]

    checks = {
        "child_running": lambda: any(r["state"] == "RUNNING" and r["pid"] for r in children()),
        "child_finished": lambda: any(r["state"] == "SUCCEEDED" for r in children()),
        "last_step": lambda: "c" in read_links(home, orchestration_id),
    }
    poll_until(checks[moment], 30, f"moment {moment}")


def check_orchestration(home: Path, orchestration_id: str) -> None:
    """Ended once, re-attached rather than retried; each step's job exists once; it succeeded
    exactly when all its children did."""
    rows = {r["id"]: r for r in read_jobs(home)}
    orchestration = rows[orchestration_id]
    children = read_links(home, orchestration_id)
    keyed = [r for r in rows.values() if (r["idempotency_key"] or "").startswith(f"orchestration/{orchestration_id}/")]
    assert len(keyed) == len(children), (children, [dict(r) for r in keyed])
    assert (orchestration["state"], orchestration["reason"]) in ORCHESTRATION_FINAL_OK, dict(orchestration)
    assert orchestration["attempt"] == 1 and orchestration["executor"] == "server"
    all_succeeded = sorted(children) == ["a", "b", "c"] and all(rows[c]["state"] == "SUCCEEDED" for c in children.values())
    assert (orchestration["state"] == "SUCCEEDED") == all_succeeded, (dict(orchestration), children)


def chaos_iteration(home: Path, rng: random.Random, log: list[str], *, orchestration_moment: str | None = None) -> int:
    """One kill and restart: of jobs at a random moment, or with `orchestration_moment`, of an
    orchestration at that moment. Returns how many jobs it submitted (its children included)."""
    orchestration = orchestration_moment is not None
    moment = orchestration_moment or rng.choice(MOMENTS)
    kill_workers = rng.random() < 0.5
    env = SERVER_ENV
    first = ServerProcess(home, env=env)
    first.start()
    if orchestration:
        orchestration_id = asyncio.run(submit_orchestration(first.url, rng))
        reach_orchestration_moment(home, moment, orchestration_id)
        job_ids = [orchestration_id]
    else:
        job_ids = asyncio.run(submit(first.url, 3, rng))
        reach_moment(home, moment, job_ids)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    if orchestration:  # its children are what runs in workers
        job_ids += list(read_links(home, job_ids[0]).values())
    if kill_workers:  # the whole machine went down, not just the server
        for job_id in job_ids:
            for process in job_processes(job_id):
                process.kill()
    log.append(f"{'orchestration ' if orchestration else ''}moment={moment} kill_workers={kill_workers}")

    with ServerProcess(home, env=env) as second:
        # Right after start-up: a RUNNING job with a dead worker must move on within two ticks.
        suspects = {r["id"]: r["pid"] for r in read_jobs(home) if r["state"] == "RUNNING" and not alive(r["pid"], r["pid_started_at"])}
        if suspects:
            poll_until(
                lambda: all(
                    r["state"] != "RUNNING" or r["pid"] != suspects[r["id"]] for r in read_jobs(home) if r["id"] in suspects
                ),
                2.0,
                f"jobs {sorted(suspects)} to leave RUNNING without a live worker",
            )
        poll_until(lambda: all(r["state"] in ("SUCCEEDED", "FAILED", "CANCELED") for r in read_jobs(home)), SETTLE_S, "every job to end")
        assert second.process.poll() is None  # still serving
    assert second.process.returncode == 0

    for row in read_jobs(home):
        if row["executor"] == "server":
            check_orchestration(home, row["id"])
        else:
            assert (row["state"], row["reason"]) in FINAL_OK, dict(row)
        assert row["attempt"] <= 2
        assert not job_processes(row["id"])
    with sqlite3.connect(home / "forge.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return 1 + len(read_links(home, job_ids[0])) if orchestration else len(job_ids)


@pytest.mark.parametrize("seed", [11, 23, 37, 53])
def test_kill_the_server_at_random_moments(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    log: list[str] = []
    home = tmp_path / "ws"
    submitted = 0
    for iteration in range(ITERATIONS_PER_TEST):
        try:
            # Every other iteration an orchestration; its moments in turn, so the seeds cover each.
            moment = ORCHESTRATION_MOMENTS[(seed + iteration) % len(ORCHESTRATION_MOMENTS)] if iteration % 2 else None
            submitted += chaos_iteration(home, rng, log, orchestration_moment=moment)
        except AssertionError as exc:
            raise AssertionError(f"seed {seed}, iteration {iteration} ({log[-1] if log else 'start'}): {exc}") from exc
    finished = read_jobs(home)
    assert len(finished) == submitted
    assert any(r["state"] == "SUCCEEDED" for r in finished)
    assert sum(1 for r in finished if r["executor"] == "server") == ITERATIONS_PER_TEST // 2
    outcomes = Counter(f"{r['state']}/{r['reason']}/attempt {r['attempt']}" for r in finished)
    print(f"seed {seed}: {'; '.join(log)} -> {dict(sorted(outcomes.items()))}")  # shown with -rA


def test_kill_one_worker_and_the_server_keeps_serving(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with ServerProcess(home, env={**SERVER_ENV, "FORGE_JOB_MAX_ATTEMPTS": "1"}) as live:
        [job_id] = asyncio.run(submit_long(live.url))
        poll_until(lambda: any(r["id"] == job_id and r["state"] == "RUNNING" and r["pid"] for r in read_jobs(home)), 30, "the job to run")
        [row] = [r for r in read_jobs(home) if r["id"] == job_id]
        os.kill(row["pid"], signal.SIGKILL)
        poll_until(lambda: [r for r in read_jobs(home) if r["id"] == job_id][0]["state"] == "FAILED", 30, "the job to fail")
        status, overview = asyncio.run(after_kill(live.url, job_id))
    assert status["state"] == "FAILED" and status["reason"] == "worker_lost"
    assert "killed by signal 9" in status["error"]
    assert overview["jobs"]["FAILED"] == 1


async def submit_long(url: str) -> list[str]:
    async with Client(f"{url}/mcp/") as client:
        result = await client.call_tool("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600}})
        return [result.structured_content["job_id"]]


async def after_kill(url: str, job_id: str) -> tuple[dict, dict]:
    async with Client(f"{url}/mcp/") as client:
        status = await client.call_tool("job_status", {"job_id": job_id})
        overview = await client.call_tool("forge_overview", {})
    return status.structured_content, overview.structured_content


def test_a_job_whose_worker_died_with_the_server_fails_with_server_restart(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    env = {**SERVER_ENV, "FORGE_JOB_MAX_ATTEMPTS": "1"}
    first = ServerProcess(home, env=env)
    first.start()
    [job_id] = asyncio.run(submit_long(first.url))
    poll_until(lambda: any(r["id"] == job_id and r["state"] == "RUNNING" and r["pid"] for r in read_jobs(home)), 30, "the job to run")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    for process in job_processes(job_id):
        process.kill()
    with ServerProcess(home, env=env) as second:
        poll_until(lambda: [r for r in read_jobs(home) if r["id"] == job_id][0]["state"] == "FAILED", 10, "the job to fail")
        status, _ = asyncio.run(after_kill(second.url, job_id))
    assert status["reason"] == "server_restart"
    assert "no attempts remain" in status["error"]
