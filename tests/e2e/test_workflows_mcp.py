"""Workflows through the MCP client against a live server, on test_sleep jobs and dataset tools:
independent branches run at the same time; a false condition skips a branch and its
dependents; validation names every problem at once; an optional step's failure (on_failure: continue) lets the rest finish and is
reported; a failing step with on_failure stop ends the run FAILED and cancels its running
sibling, after its retries; kill -9 of the server mid-run, then a restart, and the run finishes
without rerunning a finished step, re-attached to the step whose job was running; job_cancel
cancels the steps' jobs; a read-only key's run of a training step is refused before anything
runs; a workflow as an A2A task streams per-step progress."""

from __future__ import annotations

import asyncio
import base64
import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.conftest import AuthServer
from tests.e2e.test_orchestrations import ENV, TERMINAL, child_ids, job_rows, worker_starts
from tests.e2e.test_training_mcp import greetings
from tests.polling import poll_until
from tests.workflows.test_validation import BAD, check_bad

pytestmark = pytest.mark.e2e


def sleep(seconds: float, **step: Any) -> dict[str, Any]:
    return {"tool": "test_job_start", "arguments": {"kind": "test_sleep", "arguments": {"seconds": seconds}}, **step}


async def run(client: Client, document: Any, inputs: dict[str, Any] | None = None, timeout_s: float = 120) -> tuple[dict[str, Any], Any, list[str]]:
    """Start, wait, and read the status: (the run's job, workflow_status's result, progress messages)."""
    notes: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    arguments = {"document": document} if isinstance(document, dict) else {"workflow": document}
    started = await client.call_tool("workflow_run", {**arguments, "inputs": inputs or {}})
    assert not started.is_error, started.content
    waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": timeout_s},
                                    progress_callback=on_progress)  # fmt: skip
    job = waited.structured_content["job"]
    assert job["state"] in TERMINAL, job
    status = await client.call_tool("workflow_status", {"run_id": job["id"]})
    assert not status.is_error, status.content
    return job, status, notes


def steps_of(status: Any) -> dict[str, dict[str, Any]]:
    return {step["name"]: step for step in status.structured_content["steps"]}


async def test_branches_run_at_once_and_a_false_condition_skips_a_branch_and_its_dependents(tmp_path: Path) -> None:
    document = {
        "name": "branches",
        "inputs": {"go": {"type": "boolean", "default": False}},
        "steps": {
            "left": sleep(2.0),
            "right": sleep(2.0),
            "join": {"tool": "job_list", "needs": ["left", "right"], "arguments": {"limit": 5}},
            "gated": {**sleep(0.1), "when": "inputs.go and ${left.job_id} != null"},
            "after_gated": {"tool": "job_status", "arguments": {"job_id": "${gated.job_id}"}},
        },
        "outputs": {"left": "${left.job_id}", "gated": "${gated.job_id}"},
    }
    with ServerProcess(tmp_path / "ws", env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            job, status, notes = await run(client, document)
    assert job["state"] == "SUCCEEDED", job
    steps = steps_of(status)
    left, right = steps["left"], steps["right"]
    # Two independent branches overlap in time: each started before the other ended.
    assert left["started_at"] < right["finished_at"] and right["started_at"] < left["finished_at"], (left, right)
    assert steps["join"]["state"] == "succeeded" and steps["join"]["started_at"] >= max(left["finished_at"], right["finished_at"])
    assert steps["gated"]["state"] == "skipped" and "when is false" in steps["gated"]["skipped_because"]
    assert steps["after_gated"]["state"] == "skipped" and steps["after_gated"]["skipped_because"] == "needs gated skipped"
    assert job["result"]["outputs"] == {"left": left["job_id"], "gated": None}
    assert (job["result"]["succeeded"], job["result"]["skipped"], job["result"]["failed"]) == (3, 2, 0)
    # Each job step's job is a child of the run, with the step's own idempotency key.
    assert set(child_ids(tmp_path / "ws", job["id"])) == {"left", "right"}
    assert any("steps ended" in note for note in notes), notes
    # For people: the DAG coloured by state, as a PNG and as Mermaid.
    images = [c for c in status.content if c.type == "image"]
    assert len(images) == 1 and base64.b64decode(images[0].data).startswith(b"\x89PNG")
    assert "class gated,after_gated skipped" in status.structured_content["mermaid"]


async def test_an_optional_branch_fails_the_rest_finishes_and_the_failure_is_reported(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    greetings(home / "chats.jsonl", rows=60)
    with ServerProcess(home, env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            job, status, _ = await run(client, "optional-branch", {"data": str(home / "chats.jsonl")})
    steps = steps_of(status)
    assert job["state"] == "SUCCEEDED", job
    assert steps["import_extra"]["state"] == "failed" and steps["import_extra"]["error"].startswith("dataset_import: path: nothing exists there")
    assert steps["inspect_extra"]["state"] == "skipped" and steps["inspect_extra"]["skipped_because"] == "needs import_extra failed"
    assert all(steps[name]["state"] == "succeeded" for name in ("import", "prepare", "inspect")), steps
    assert job["result"]["failed_steps"] == ["import_extra"] and status.structured_content["failed_steps"] == ["import_extra"]
    assert job["result"]["outputs"]["extra"] is None and job["result"]["outputs"]["prepared"] == "chats@v2"
    # The resolved arguments are shown: the absolute path the agent gave, as given.
    assert steps["import"]["arguments"]["path"] == str(home / "chats.jsonl")


async def test_a_failing_step_is_retried_then_stops_the_run_and_cancels_its_running_sibling(tmp_path: Path) -> None:
    document = {"name": "stops", "steps": {
        "slow": sleep(600),
        "broken": {"tool": "test_job_start", "retries": 1,
                   "arguments": {"kind": "test_fail", "arguments": {"message": "disk full"}}},
        "later": {"tool": "job_list", "needs": ["broken"]},
    }}  # fmt: skip
    home = tmp_path / "ws"
    with ServerProcess(home, env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            job, status, _ = await run(client, document)
    assert job["state"] == "FAILED" and "step 'broken' (test_job_start) failed" in job["error"], job
    steps = steps_of(status)
    assert steps["broken"]["state"] == "failed" and steps["broken"]["attempts"] == 2, steps["broken"]
    assert steps["slow"]["state"] == "canceled" and steps["later"]["state"] in ("canceled", "skipped"), steps
    rows = job_rows(home)
    children = child_ids(home, job["id"])
    assert set(children) == {"slow", "broken", "broken#2"}  # one job per attempt
    assert rows[children["slow"]]["state"] == "CANCELED" and not job_processes(children["slow"])


def test_kill_9_mid_run_then_restart_finishes_without_rerunning_a_finished_step(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    document = {"name": "chain", "steps": {"a": sleep(0.5), "b": sleep(6.0, needs=["a"]),
                                           "c": {"tool": "job_status", "arguments": {"job_id": "${b.job_id}"}}}}  # fmt: skip
    first = ServerProcess(home, env=ENV)
    first.start()

    async def start() -> str:
        async with Client(f"{first.url}/mcp/") as client:
            started = await client.call_tool("workflow_run", {"document": document})
        return started.structured_content["job_id"]

    run_id = asyncio.run(start())

    def b_is_running() -> bool:
        child = child_ids(home, run_id).get("b")
        return child is not None and job_rows(home)[child]["state"] == "RUNNING" and bool(job_rows(home)[child]["pid"])

    poll_until(b_is_running, 60, "step b's job to run")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)

    async def finish(url: str) -> tuple[dict[str, Any], Any]:
        async with Client(f"{url}/mcp/") as client:
            waited = await client.call_tool("job_wait", {"job_id": run_id, "timeout_s": 90})
            status = await client.call_tool("workflow_status", {"run_id": run_id, "chart": False})
        return waited.structured_content["job"], status

    with ServerProcess(home, env=ENV) as second:
        job, status = asyncio.run(finish(second.url))
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 1, job  # re-attached, not retried
    steps = steps_of(status)
    assert [steps[n]["state"] for n in "abc"] == ["succeeded"] * 3
    children = child_ids(home, run_id)
    rows = job_rows(home)
    # One job per step, each run by one worker: a was not rerun, b was re-attached.
    assert set(children) == {"a", "b"}
    assert sum(1 for r in rows.values() if (r["idempotency_key"] or "").startswith(f"orchestration/{run_id}/")) == 2
    assert all(worker_starts(home, child) == 1 for child in children.values())
    assert steps["b"]["job_id"] == children["b"] and steps["b"]["attempts"] == 1
    assert "re-attached to job" in (home / "runs" / run_id / "worker.log").read_text()


async def test_job_cancel_on_a_run_cancels_its_steps_jobs(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    document = {"name": "long", "steps": {"x": sleep(600), "y": sleep(600), "z": {"tool": "job_list", "needs": ["x"]}}}
    with ServerProcess(home, env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            started = await client.call_tool("workflow_run", {"document": document})
            run_id = started.structured_content["job_id"]
            poll_until(lambda: len(child_ids(home, run_id)) == 2
                       and all(job_rows(home)[c]["pid"] for c in child_ids(home, run_id).values()), 60, "both steps to run")  # fmt: skip
            canceled = await client.call_tool("job_cancel", {"job_id": run_id})
            status = await client.call_tool("workflow_status", {"run_id": run_id, "chart": False})
    assert canceled.structured_content["state"] == "CANCELED", canceled.structured_content
    rows = job_rows(home)
    for child in child_ids(home, run_id).values():
        assert rows[child]["state"] == "CANCELED" and not job_processes(child), dict(rows[child])
    assert {s["name"]: s["state"] for s in status.structured_content["steps"]} == {"x": "canceled", "y": "canceled",
                                                                                  "z": "canceled"}  # fmt: skip


async def test_validation_over_mcp_reports_every_problem_at_once_and_a_run_of_it_starts_nothing(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "ws", env=ENV) as server:
        async with Client(f"{server.url}/mcp/") as client:
            checked = await client.call_tool("workflow_validate", {"document": BAD})
            refused = await client.call_tool("workflow_run", {"document": BAD})
            jobs = await client.call_tool("job_list", {})
    assert not checked.is_error and checked.structured_content["valid"] is False
    check_bad(checked.structured_content["problems"])
    assert refused.is_error and "problem(s), nothing was started: step a, tool: unknown tool" in refused.content[0].text
    assert jobs.structured_content["jobs"] == []


async def test_a_read_only_key_cannot_train_through_a_workflow(auth_server: AuthServer) -> None:
    document = {"name": "sneaky", "steps": {"look": {"tool": "dataset_list"},
                                            "train": {"tool": "train_start", "arguments": {"spec": {"base_model": "m",
                                                                                                   "dataset": "d"}}}}}  # fmt: skip
    headers = {"authorization": f"Bearer {auth_server.keys['reader']}"}
    async with httpx2.AsyncClient(headers=headers) as http:
        async with Client(streamable_http_client(f"{auth_server.url}/mcp/", http_client=http)) as client:
            before = (await client.call_tool("job_list", {})).structured_content["jobs"]
            refused = await client.call_tool("workflow_run", {"document": document})
            checked = await client.call_tool("workflow_validate", {"document": document})
            after = (await client.call_tool("job_list", {})).structured_content["jobs"]
            reads = await client.call_tool("workflow_run", {"document": {"name": "reads", "steps": {"look": {"tool": "dataset_list"}}}})
    assert refused.is_error and "nothing was started: step train, tool: train_start needs the 'train' scope" in refused.content[0].text
    assert [(p["step"], p["field"]) for p in checked.structured_content["problems"]] == [("train", "tool")]
    assert before == after  # nothing was queued
    assert not reads.is_error  # a workflow of reads runs with a read key


async def test_a_workflow_as_an_a2a_task_streams_progress_per_step(tmp_path: Path) -> None:
    # Steps long enough that each one's end is its own progress update (the engine passes on a job's newest progress).
    document = {"name": "a2a", "steps": {"a": sleep(1.5), "b": sleep(1.5, needs=["a"]), "c": {"tool": "job_list", "needs": ["b"]}},
                "outputs": {"b": "${b.job_id}"}}  # fmt: skip
    message = new_message([new_data_part({"tool": "workflow_run", "arguments": {"document": document}})], role=Role.ROLE_USER)
    with ServerProcess(tmp_path / "ws", env=ENV) as server:
        async with a2a_client(server.url) as client:
            events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    updates = [e.status_update.status for e in events if e.HasField("status_update")]
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED, texts
    assert any("0/3 steps ended; step a started; running: a" in t for t in texts), texts
    assert any("1/3 steps ended; step b started; running: b" in t for t in texts), texts
    # The artifact is the run's job and its WorkflowResult, as for any job.
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    payload = get_data_parts(artifact.parts)[0]
    result = payload["result"]
    assert result["succeeded"] == 3 and result["outputs"]["b"].startswith("job_"), result
    assert [step["state"] for step in result["steps"]] == ["succeeded"] * 3
