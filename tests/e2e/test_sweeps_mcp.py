"""Sweeps through the MCP client on the tiny model, against a live server: a TPE sweep with two
trials at once finishes with every trial a child train job, prunes the trials a wide
learning-rate range makes clearly worse (their jobs stopped, no process left), shows its
trials and charts, and its best trial is registered with the sweep as lineage; a bad space
is one clear error before any job starts; kill -9 of the server mid-sweep, then a restart,
and the sweep finishes with exactly n_trials trials, none run twice."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.e2e.test_orchestrations import TERMINAL, child_ids, job_rows, worker_starts
from tests.e2e.test_training_mcp import greetings
from tests.polling import poll_until

# Several trainings each, on a CPU the other test worker shares: past the suite's 300 s default.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

# Long enough after the first eval (step 10) that a pruned trial's job is still training when it is stopped.
SPEC = {"base_model": "models/tiny", "dataset": "greet", "eval_split": "test", "eval_steps": 10, "max_steps": 80,
        "save_steps": 40}  # fmt: skip
# From 1e-6 (learns nothing in 30 steps) to 1e-1: some trials are clearly worse than others.
SPACE = {"learning_rate": {"type": "float", "low": 1e-6, "high": 1e-1, "log": True},
         "lora_r": {"type": "int", "low": 4, "high": 16, "step": 4}}  # fmt: skip


def workspace(tmp_path: Path, tiny_model: Path) -> Path:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=200)
    return home


async def prepare(client: Client) -> None:
    """The greetings dataset, imported and split (train/test), as every trial trains on it."""
    await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
    prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
    waited = await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 600})
    assert waited.structured_content["job"]["state"] == "SUCCEEDED", waited.structured_content


def trial_rows(home: Path, sweep_id: str) -> dict[str, Any]:
    """step (trial-<n>, trial-<n>-eval) -> the step's job row."""
    rows = job_rows(home)
    return {step: rows[child] for step, child in child_ids(home, sweep_id).items()}


async def test_a_tpe_sweep_prunes_the_clearly_worse_trials_and_its_best_is_registered(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    notes: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await prepare(client)
            started = await client.call_tool("sweep_start", {"recipe": "sft-lora-tiny", "spec": SPEC, "space": SPACE,
                                                             "n_trials": 6, "parallel": 2, "seed": 0})  # fmt: skip
            assert not started.is_error, started.content
            sweep_id = started.structured_content["job_id"]
            waited = await client.call_tool("job_wait", {"job_id": sweep_id, "timeout_s": 600}, progress_callback=on_progress)
            status = await client.call_tool("sweep_status", {"sweep_id": sweep_id})
            listed = await client.call_tool("sweep_list", {})
            registered = await client.call_tool("model_register", {"name": "greeter", "job_id": sweep_id})
            model = await client.call_tool("model_get", {"model": "greeter"})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED" and job["kind"] == "sweep" and job["executor"] == "server", job
    result = job["result"]
    # Every trial is a child train job of the sweep, run once.
    trials = trial_rows(home, sweep_id)
    assert sorted(trials) == [f"trial-{n}" for n in range(6)]
    assert all(row["kind"] == "train" and row["state"] in TERMINAL for row in trials.values())
    assert all(worker_starts(home, row["id"]) == 1 for row in trials.values())
    assert result["complete"] + result["pruned"] + result["failed"] == 6 and len(result["trials"]) == 6
    # The median pruner stopped at least one trial; its job was canceled and left no process.
    pruned = [t for t in result["trials"] if t["state"] == "pruned"]
    assert pruned, result["trials"]
    for trial in pruned:
        # Pruned while it trained, its job is stopped; on a busy machine one may finish before the stop lands.
        assert trials[f"trial-{trial['number']}"]["state"] in ("CANCELED", "SUCCEEDED"), trial
        assert trial["pruned_at_step"] >= 10 and not job_processes(trial["job_id"])
        # Its steps are the ones its job ran until the stop landed, not only up to the pruning step.
        assert trial["steps"] == max(trial["pruned_at_step"], trials[f"trial-{trial['number']}"]["progress_done"]), trial
    stopped = [trials[f"trial-{t['number']}"] for t in pruned if trials[f"trial-{t['number']}"]["state"] == "CANCELED"]
    # At least one was stopped before it finished training (on a busy machine a job may reach its end first).
    assert stopped and any(row["progress_done"] < 80 for row in stopped), [dict(row) for row in stopped]
    complete = [t for t in result["trials"] if t["state"] == "complete"]
    assert result["best_value"] == min(t["value"] for t in complete)
    best = next(t for t in complete if t["number"] == result["best_trial"])
    assert best["job_id"] == result["best_job_id"] and trials[f"trial-{best['number']}"]["state"] == "SUCCEEDED"
    assert json.loads(trials[f"trial-{best['number']}"]["arguments"])["plan"]["spec"]["learning_rate"] == best["params"]["learning_rate"]
    # Progress per finished trial, as MCP progress notifications.
    assert any("6/6 trials finished" in note for note in notes), notes
    # sweep_status: the trials, the best, importance and two charts as image content.
    assert not status.is_error, status.content
    shown = status.structured_content
    assert shown["best"]["number"] == result["best_trial"] and shown["complete"] == result["complete"]
    assert [t["state"] for t in shown["trials"]] == [t["state"] for t in result["trials"]]
    assert len(complete) < 2 or set(shown["importance"]) == {"learning_rate", "lora_r"}
    images = [c for c in status.content if c.type == "image"]
    assert len(images) == 2 and all(i.mime_type == "image/png" and base64.b64decode(i.data).startswith(b"\x89PNG") for i in images)
    assert listed.structured_content["sweeps"][0]["sweep_id"] == sweep_id
    # The best trial, one call from the registry, its lineage naming the sweep, the trial and its parameters.
    assert not registered.is_error, registered.content
    version = registered.structured_content
    assert version["job_id"] == result["best_job_id"]
    assert version["sweep"] == {"sweep_id": sweep_id, "trial": result["best_trial"], "params": result["best_params"],
                                "objective": "eval_loss", "value": result["best_value"]}  # fmt: skip
    assert model.structured_content["model"]["sweep"]["sweep_id"] == sweep_id
    assert f"{sweep_id}, best trial {result['best_trial']}" in (home / version["path"] / "README.md").read_text()


async def test_a_bad_space_is_one_clear_error_before_any_job_starts(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    cases = {
        "unknown field": ({"space": {"lerning_rate": SPACE["learning_rate"]}}, "space.lerning_rate: not a training spec field"),
        "low above high": ({"space": {"lora_r": {"type": "int", "low": 16, "high": 4}}}, "low must be below high"),
        "empty choices": ({"space": {"lora_r": {"type": "categorical", "choices": []}}}, "List should have at least 1 item"),
        "below a spec bound": ({"space": {"lora_alpha": {"type": "int", "low": 0, "high": 32}}},
                               "space: a trial with lora_alpha=0 would be refused: invalid training spec: 'lora_alpha': "
                               "Input should be greater than or equal to 1"),
        "a value train_plan refuses": ({"space": {"max_length": {"type": "int", "low": 64, "high": 100_000}}},
                                       "space: a trial with max_length=100000 would be refused: "),
        "past the spec's bound": ({"space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 0.5}}},
                                  "space: a trial with learning_rate=0.5 would be refused: invalid training spec: "
                                  "'learning_rate': Input should be less than or equal to 0.1"),
        "no eval split": ({"spec": {**SPEC, "eval_split": None, "eval_steps": None}, "pruner": "none"},
                          "objective eval_loss: give spec.eval_split"),
        "pruning without eval steps": ({"spec": {**SPEC, "eval_steps": None}}, "pruner median: trials are pruned on the "
                                                                                "eval losses they log"),
        "grid over a float": ({"sampler": "grid"}, "space.learning_rate: the grid sampler needs choices or an int range"),
        "unknown config": ({"config": "nope"}, "config: no sweep config 'nope'; the configs are"),
    }  # fmt: skip
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await prepare(client)
            before = (await client.call_tool("job_list", {})).structured_content["jobs"]
            answers = {}
            for name, (change, _) in cases.items():
                arguments = {"recipe": "sft-lora-tiny", "spec": SPEC, "space": SPACE, **change}
                answers[name] = await client.call_tool("sweep_start", arguments)
            after = (await client.call_tool("job_list", {})).structured_content["jobs"]
    for name, (_, expected) in cases.items():
        answer = answers[name]
        assert answer.is_error, (name, answer.content)
        assert expected in answer.content[0].text, (name, answer.content[0].text)
    assert [j["id"] for j in after] == [j["id"] for j in before]  # nothing was queued


def test_kill_9_mid_sweep_then_a_restart_finishes_with_exactly_n_trials(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    spec = {**SPEC, "max_steps": 40, "eval_steps": 10, "save_steps": 10}

    async def start(url: str) -> str:
        async with Client(f"{url}/mcp/") as client:
            await prepare(client)
            started = await client.call_tool("sweep_start", {"recipe": "sft-lora-tiny", "spec": spec, "space": SPACE,
                                                             "n_trials": 4, "parallel": 2, "pruner": "none"})  # fmt: skip
        assert not started.is_error, started.content
        return started.structured_content["job_id"]

    first = ServerProcess(home)
    first.start()
    sweep_id = asyncio.run(start(first.url))

    def a_trial_is_training() -> bool:
        return any(r["state"] == "RUNNING" and (r["progress_done"] or 0) >= 1 for r in trial_rows(home, sweep_id).values())

    poll_until(a_trial_is_training, 300, "a trial to be training")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert job_rows(home)[sweep_id]["state"] == "RUNNING"
    with ServerProcess(home) as second:
        poll_until(lambda: job_rows(home)[sweep_id]["state"] in TERMINAL, 900, "the sweep to end")

        async def show() -> tuple[Any, Any]:
            async with Client(f"{second.url}/mcp/") as client:
                status = await client.call_tool("sweep_status", {"sweep_id": sweep_id, "charts": False})
                job = await client.call_tool("job_status", {"job_id": sweep_id})
            return status.structured_content, job.structured_content

        status, job = asyncio.run(show())
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 1, job  # re-attached, not retried
    assert status["n_trials"] == 4 and status["complete"] + status["pruned"] + status["failed"] == 4, status
    assert status["running"] == 0
    trials = trial_rows(home, sweep_id)
    # One train job per trial: none started twice, whatever the crash cut (a job whose worker
    # died with the server resumes from its checkpoint as attempt 2 of the same job).
    assert sorted(trials) == [f"trial-{n}" for n in range(4)], trials
    assert len({row["id"] for row in trials.values()}) == 4
    keyed = [r for r in job_rows(home).values() if (r["idempotency_key"] or "").startswith(f"orchestration/{sweep_id}/")]
    assert len(keyed) == 4
    assert all(row["state"] in TERMINAL and not job_processes(row["id"]) for row in trials.values())
    assert job["result"]["complete"] >= 1 and len(job["result"]["trials"]) == 4
    log = (home / "runs" / sweep_id / "worker.log").read_text()
    assert "re-attached after a server restart" in log


async def test_a_grid_sweep_scored_by_an_evaluation_metric_covers_its_grid_once(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    spec = {**SPEC, "max_steps": 10, "eval_steps": None, "save_steps": 10}
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await prepare(client)
            started = await client.call_tool("sweep_start", {
                "recipe": "sft-lora-tiny", "spec": spec, "space": {"lora_r": {"type": "categorical", "choices": [4, 8]}},
                "sampler": "grid", "n_trials": 5, "parallel": 1, "objective": "rouge_l",
                "evaluation": {"limit": 5, "max_new_tokens": 8}})  # fmt: skip
            assert not started.is_error, started.content
            sweep_id = started.structured_content["job_id"]
            waited = await client.call_tool("job_wait", {"job_id": sweep_id, "timeout_s": 600})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job
    result = job["result"]
    assert (result["objective"], result["direction"]) == ("rouge_l", "maximize")
    # n_trials is capped at the grid's size: each value once, each trial trained then scored by its own evaluate job.
    assert sorted(t["params"]["lora_r"] for t in result["trials"]) == [4, 8] and result["complete"] == 2
    steps = child_ids(home, sweep_id)
    assert sorted(steps) == ["trial-0", "trial-0-eval", "trial-1", "trial-1-eval"]
    rows = job_rows(home)
    for number in (0, 1):
        evaluation = rows[steps[f"trial-{number}-eval"]]
        assert evaluation["kind"] == "evaluate" and evaluation["state"] == "SUCCEEDED"
        value = json.loads(evaluation["result"])["metrics"]["rouge_l"]
        assert next(t for t in result["trials"] if t["number"] == number)["value"] == value
    assert result["best_value"] == max(t["value"] for t in result["trials"])


async def test_a_step_budget_stops_new_trials_and_says_so(tmp_path: Path, tiny_model: Path) -> None:
    home = workspace(tmp_path, tiny_model)
    spec = {**SPEC, "max_steps": 10, "eval_steps": None, "save_steps": 10}
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await prepare(client)
            started = await client.call_tool("sweep_start", {"recipe": "sft-lora-tiny", "spec": spec, "space": SPACE,
                                                             "n_trials": 4, "parallel": 1, "pruner": "none",
                                                             "max_total_steps": 15})  # fmt: skip
            waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 600})
    result = waited.structured_content["job"]["result"]
    # 10 steps after the first trial (under 15: another starts), 20 after the second: no third.
    assert result["stopped_by"] == "max_total_steps 15" and result["total_steps"] == 20, result
    assert len(result["trials"]) == 2 and len(child_ids(home, waited.structured_content["job"]["id"])) == 2
