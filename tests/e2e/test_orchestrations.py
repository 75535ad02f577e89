"""Orchestrations through a real server (DESIGN §4b): kill -9 of the server while one waits on
its children, then a restart on the same workspace; cancel over MCP; job_status, job_wait,
job_list, job_cancel and the job resource over MCP, and an A2A task, exactly as for a job.
The workload is the test orchestration: three one-GPU test_sleep children (a and b in
parallel, then c) on a server with one GPU slot."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import CancelTaskRequest, Role, SendMessageRequest, TaskState
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.e2e.test_jobs_a2a import job_of_task
from tests.polling import poll_until

pytestmark = pytest.mark.e2e

ENV = {"FORGE_TEST_JOB_KINDS": "1", "FORGE_GPU_SLOTS": "1"}
ORCHESTRATION = "test_orchestration"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELED")


def job_rows(home: Path) -> dict[str, sqlite3.Row]:
    with sqlite3.connect(f"file:{home / 'forge.db'}?mode=ro", uri=True, timeout=10) as db:
        db.row_factory = sqlite3.Row
        return {r["id"]: r for r in db.execute("SELECT * FROM jobs")}


def child_ids(home: Path, orchestration_id: str) -> dict[str, str]:
    """step -> child job id, from job_links."""
    with sqlite3.connect(f"file:{home / 'forge.db'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute("SELECT step, child_id FROM job_links WHERE parent_id = ?", (orchestration_id,)).fetchall()
    return {step: child for step, child in rows if child}


def worker_starts(home: Path, job_id: str) -> int:
    """How many workers started for the job: the 'started' events of every attempt's event file."""
    run = RunDir(home / "runs", job_id)
    files = [run.events, *run.previous_events()]
    return sum(f.read_text().count('"type":"started"') for f in files if f.exists())


async def start_orchestration(url: str, arguments: dict[str, Any]) -> str:
    async with Client(f"{url}/mcp/") as client:
        started = await client.call_tool("test_job_start", {"kind": ORCHESTRATION, "arguments": arguments})
    assert not started.is_error, started.content
    return started.structured_content["job_id"]


async def status(url: str, job_id: str) -> dict[str, Any]:
    async with Client(f"{url}/mcp/") as client:
        result = await client.call_tool("job_status", {"job_id": job_id})
    return result.structured_content


def test_kill_9_while_it_waits_then_the_restarted_server_re_attaches_and_each_child_runs_once(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    first = ServerProcess(home, env=ENV)
    first.start()
    orchestration_id = asyncio.run(start_orchestration(first.url, {"seconds": 1.5}))

    def waiting_on_a_running_child() -> bool:
        rows = job_rows(home)
        return any(rows[c]["state"] == "RUNNING" and rows[c]["pid"] for c in child_ids(home, orchestration_id).values())

    poll_until(waiting_on_a_running_child, 30, "the orchestration to wait on a running child")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert job_rows(home)[orchestration_id]["state"] == "RUNNING"

    with ServerProcess(home, env=ENV) as second:
        poll_until(lambda: job_rows(home)[orchestration_id]["state"] in TERMINAL, 90, "the orchestration to end")
        shown = asyncio.run(status(second.url, orchestration_id))
    assert shown["state"] == "SUCCEEDED", shown
    assert shown["attempt"] == 1  # re-attached, not retried
    children = child_ids(home, orchestration_id)
    assert sorted(children) == ["a", "b", "c"]
    assert shown["result"]["children"] == children
    rows = job_rows(home)
    # Each step's job exists once and ran once: one row per step, one worker start each.
    assert sum(1 for r in rows.values() if (r["idempotency_key"] or "").startswith(f"orchestration/{orchestration_id}/")) == 3
    for child in children.values():
        assert rows[child]["state"] == "SUCCEEDED" and rows[child]["attempt"] == 1, dict(rows[child])
        assert worker_starts(home, child) == 1
        assert not job_processes(child)


async def test_an_orchestration_over_mcp_reads_and_cancels_like_a_job(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with ServerProcess(home, env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            quick = await client.call_tool("test_job_start", {"kind": ORCHESTRATION, "arguments": {"seconds": 0.3}})
            notes: list[tuple[float, float | None, str | None]] = []

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                notes.append((done, total, message))

            finished = await client.call_tool("job_wait", {"job_id": quick.structured_content["job_id"], "timeout_s": 60},
                                              progress_callback=on_progress)  # fmt: skip
            assert finished.structured_content["job"]["state"] == "SUCCEEDED"
            assert (2.0, 3.0, "RUNNING: step c") in notes, notes  # MCP progress notifications, as for a job

            started = await client.call_tool("test_job_start", {"kind": ORCHESTRATION, "arguments": {"seconds": 600}})
            job_id = started.structured_content["job_id"]
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 2})
            assert waited.structured_content["timed_out"] is True
            job = waited.structured_content["job"]
            assert job["state"] == "RUNNING" and job["executor"] == "server" and job["kind"] == ORCHESTRATION
            assert job["progress"]["message"] == "steps a and b"
            shown = await client.call_tool("job_status", {"job_id": job_id})
            assert shown.structured_content["state"] == "RUNNING"
            resource = await client.read_resource(f"forge://jobs/{job_id}")
            assert json.loads(resource.contents[0].text)["state"] == "RUNNING"
            listed = await client.call_tool("job_list", {"kind": ORCHESTRATION, "state": ["RUNNING"]})
            assert [j["id"] for j in listed.structured_content["jobs"]] == [job_id]
            logs = await client.call_tool("job_logs", {"job_id": job_id})
            assert "step a: started test_sleep" in logs.structured_content["text"]

            poll_until(lambda: any(job_rows(home)[c]["pid"] for c in child_ids(home, job_id).values()), 30, "a step to run")
            children = child_ids(home, job_id)
            assert sorted(children) == ["a", "b"]
            assert sorted(job_rows(home)[c]["state"] for c in children.values()) == ["QUEUED", "RUNNING"]  # one GPU
            canceled = await client.call_tool("job_cancel", {"job_id": job_id})
            again = await client.call_tool("job_cancel", {"job_id": job_id})
        assert canceled.structured_content["state"] == again.structured_content["state"] == "CANCELED"
        rows = job_rows(home)
        for child in children.values():
            assert rows[child]["state"] == "CANCELED", dict(rows[child])
            assert not job_processes(child)
        assert "c" not in child_ids(home, job_id)


def orchestration_message(seconds: float):  # noqa: ANN201
    start = {"tool": "test_job_start", "arguments": {"kind": ORCHESTRATION, "arguments": {"seconds": seconds}}}
    return new_message([new_data_part(start)], role=Role.ROLE_USER)


async def test_an_orchestration_as_an_a2a_task_streams_progress_and_ends_with_its_result(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "ws", env=ENV) as server:
        message = orchestration_message(0.2)
        async with a2a_client(server.url) as client:
            events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    updates = [e.status_update.status for e in events if e.HasField("status_update")]
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    assert any("RUNNING" in t for t in texts), texts
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED, texts
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    payload = get_data_parts(artifact.parts)[0]
    assert payload["job_id"].startswith("job_") and sorted(payload["result"]["children"]) == ["a", "b", "c"]


async def test_cancel_task_of_an_orchestration_cancels_it_and_its_children(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    with ServerProcess(home, env=ENV) as server:
        client = await create_client(server.url, client_config=ClientConfig(streaming=False, polling=True))
        try:
            [first] = [e async for e in client.send_message(SendMessageRequest(message=orchestration_message(600)))]
            job_id = await job_of_task(client, first.task.id)
            poll_until(lambda: len(child_ids(home, job_id)) == 2, 30, "steps a and b to start")
            canceled = await client.cancel_task(CancelTaskRequest(id=first.task.id))
        finally:
            await client.close()
        shown = await status(server.url, job_id)
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert shown["state"] == "CANCELED" and shown["executor"] == "server"
    rows = job_rows(home)
    for child in child_ids(home, job_id).values():
        assert rows[child]["state"] == "CANCELED"
        assert not job_processes(child)
