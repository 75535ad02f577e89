"""A sweep as an A2A task and a canceled sweep, on the tiny model against a live server.

Over A2A a sweep is a task like any job's (DESIGN §4b): its progress streams as WORKING
updates, one per finished trial ("k/n trials finished ..."), and the task ends COMPLETED
with the SweepResult as its artifact. Over MCP, job_cancel on a sweep cancels its running
and queued trials with it: no trial's job is left queued or running, no worker process
is left, no trial starts afterwards, and sweep_status still reads the canceled sweep."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.e2e.test_orchestrations import TERMINAL, child_ids, job_rows
from tests.e2e.test_sweeps_mcp import prepare, trial_rows, workspace
from tests.polling import poll_until

pytestmark = pytest.mark.e2e
# Trials train on a shared CPU (and the first test of a run also builds the tiny model): far
# past the suite's 300 s default, though nothing here asserts how long anything takes.
TIMEOUT_S = 1800

# A learning-rate range the tiny model trains well in: every trial completes, none diverges.
SPACE = {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
         "lora_r": {"type": "int", "low": 4, "high": 16, "step": 4}}  # fmt: skip


@pytest.mark.timeout(TIMEOUT_S)
async def test_one_sweep_over_a2a_streams_per_trial_progress_and_returns_the_best_trial_as_the_artifact(
    tmp_path: Path, tiny_model: Path
) -> None:
    home = workspace(tmp_path, tiny_model)
    # Three trials, two at a time: the third starts once one has finished, so the sweep is
    # still running (and streaming) after a trial finished.
    arguments = {"config": "lr-rank-tiny", "space": SPACE, "n_trials": 3, "parallel": 2, "pruner": "none",
                 "spec": {"base_model": "models/tiny", "dataset": "greet", "max_steps": 20, "eval_steps": 5,
                          "save_steps": 20}}  # fmt: skip
    message = new_message([new_data_part({"tool": "sweep_start", "arguments": arguments})], role=Role.ROLE_USER)
    with ServerProcess(home) as server:
        async with Client(f"{server.url}/mcp/") as mcp:
            await prepare(mcp)
        async with a2a_client(server.url) as client:
            events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    updates = [e.status_update.status for e in events if e.HasField("status_update")]
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED, texts
    # Progress per finished trial, streamed while the sweep ran.
    finished = [int(m.group(1)) for t in texts if (m := re.search(r"(\d+)/3 trials finished", t))]
    assert any(k >= 1 for k in finished), texts
    assert finished == sorted(finished), texts  # the count only grows
    # The artifact is the sweep's job and its SweepResult: the best trial and its train job.
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    payload = get_data_parts(artifact.parts)[0]
    sweep_id, result = payload["job_id"], payload["result"]
    assert sweep_id.startswith("job_")
    assert {"best_trial", "best_value", "best_params", "best_job_id"} <= set(result), result
    assert set(result["best_params"]) == {"learning_rate", "lora_r"}
    assert result["complete"] + result["pruned"] + result["failed"] == 3 and len(result["trials"]) == 3
    trials = trial_rows(home, sweep_id)
    assert sorted(trials) == ["trial-0", "trial-1", "trial-2"], trials
    best = trials[f"trial-{int(result['best_trial'])}"]  # A2A data parts carry every number as a float
    assert best["id"] == result["best_job_id"]
    assert best["kind"] == "train" and best["state"] == "SUCCEEDED", dict(best)
    complete = [t["value"] for t in result["trials"] if t["state"] == "complete"]
    assert result["best_value"] == min(complete)  # eval_loss: lower is better
    assert job_rows(home)[sweep_id]["state"] == "SUCCEEDED"


@pytest.mark.timeout(TIMEOUT_S)
async def test_job_cancel_on_the_sweep_cancels_its_running_and_queued_trials(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    # Six trials of 200 steps, two at a time: when it is canceled the sweep has trials running
    # and trials it has not started yet. No pruner: only the cancel stops a trial.
    arguments = {"recipe": "sft-lora-tiny", "space": SPACE, "n_trials": 6, "parallel": 2, "pruner": "none",
                 "spec": {"base_model": "models/tiny", "dataset": "greet", "eval_split": "test", "max_steps": 200,
                          "eval_steps": 5, "save_steps": 100}}  # fmt: skip
    with ServerProcess(home) as server:
        async with Client(f"{server.url}/mcp/") as client:
            await prepare(client)
            started = await client.call_tool("sweep_start", arguments)
            assert not started.is_error, started.content
            sweep_id = started.structured_content["job_id"]

            def a_trial_is_training() -> bool:
                """A trial's train job RUNNING with optimizer steps done: its worker is mid-training."""
                rows = trial_rows(home, sweep_id).values()
                return any(
                    r["kind"] == "train" and r["state"] == "RUNNING" and (r["progress_done"] or 0) >= 1 for r in rows
                )

            poll_until(a_trial_is_training, 600, "a trial's train job to be training")
            canceled = await client.call_tool("job_cancel", {"job_id": sweep_id})
            assert not canceled.is_error, canceled.content
            waited = await client.call_tool("job_wait", {"job_id": sweep_id, "timeout_s": 600})
            children = child_ids(home, sweep_id)
            await asyncio.sleep(5)  # long enough for a trial the sweep would still start to be linked
            later = child_ids(home, sweep_id)
            status = await client.call_tool("sweep_status", {"sweep_id": sweep_id, "charts": False})
    assert canceled.structured_content["state"] == "CANCELED", canceled.structured_content
    assert waited.structured_content["job"]["state"] == "CANCELED", waited.structured_content
    # Every trial's job ended with the sweep (one that had just finished may have SUCCEEDED),
    # and none left a worker process behind.
    assert 1 <= len(children) < 6, children  # trials were left to start when it was canceled
    rows = job_rows(home)
    for step, child in children.items():
        assert rows[child]["kind"] == "train", dict(rows[child])
        assert rows[child]["state"] in ("CANCELED", "SUCCEEDED"), (step, dict(rows[child]))
        assert not job_processes(child), (step, child)
    assert any(rows[child]["state"] == "CANCELED" for child in children.values())  # the one training, at least
    assert not [r["id"] for r in rows.values() if r["state"] not in TERMINAL], "a job is left queued or running"
    # No trial started after the cancel.
    assert later == children
    # sweep_status still reads the canceled sweep, and reports no trial as running.
    assert not status.is_error, status.content
    shown = status.structured_content
    assert shown["state"] == "CANCELED" and shown["running"] == 0, shown
    assert all(t["state"] != "running" for t in shown["trials"]), shown["trials"]
