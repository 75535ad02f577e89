"""The example workflows of configs/workflows/, run as a user would through the MCP client on
the tiny model: lifecycle.yaml (what `make demo` does) from a CSV to a served GGUF, its two
exports running at the same time; sweep-then-promote.yaml from a dataset to a promoted best
trial. (optional-branch.yaml runs in test_workflows_mcp.py.)"""

from __future__ import annotations

import base64
import importlib.util
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.e2e.test_orchestrations import child_ids, job_rows
from tests.e2e.test_training_mcp import greetings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]
DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"
# The demo's task needs far fewer steps than the demo's 600 to beat the base (which scores
# about 0): the condition of the promote step only asks for better, not for the demo's gate.
LIFECYCLE_STEPS = 150
THREADS = {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}  # the demo's, inherited by the job workers


def write_demo_task(path: Path) -> None:
    spec = importlib.util.spec_from_file_location("forge_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_task_csv(path)


async def run_example(client: Client, name: str, inputs: dict[str, Any]) -> tuple[dict[str, Any], Any, list[str]]:
    notes: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        notes.append(message or "")

    checked = await client.call_tool("workflow_validate", {"workflow": name, "inputs": inputs})
    assert checked.structured_content["valid"], checked.structured_content["problems"]
    started = await client.call_tool("workflow_run", {"workflow": name, "inputs": inputs})
    assert not started.is_error, started.content
    run_id = started.structured_content["job_id"]
    while True:
        waited = await client.call_tool("job_wait", {"job_id": run_id, "timeout_s": 600}, progress_callback=on_progress)
        if not waited.structured_content["timed_out"]:
            break
    status = await client.call_tool("workflow_status", {"run_id": run_id})
    return waited.structured_content["job"], status, notes


async def test_lifecycle_runs_from_a_csv_to_a_served_model_with_both_exports_at_once(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    write_demo_task(home / "quick-answers.csv")
    inputs = {"data": str(home / "quick-answers.csv"), "name": "quick", "max_steps": LIFECYCLE_STEPS}
    with ServerProcess(home, env=THREADS) as server:
        async with Client(f"{server.url}/mcp/") as client:
            job, status, notes = await run_example(client, "lifecycle", inputs)
            steps = {s["name"]: s for s in status.structured_content["steps"]}
            # The service the workflow started keeps serving after it: ask it, then stop it.
            service = ((job.get("result") or {}).get("outputs") or {}).get("service")
            services = (await client.call_tool("serve_list", {})).structured_content["services"]
            if service:
                url, api_key = job["result"]["outputs"]["url"], job["result"]["outputs"]["api_key"]
                async with httpx.AsyncClient(headers={"Authorization": f"Bearer {api_key}"}, timeout=60) as http:
                    health = await http.get(url.removesuffix("/v1") + "/health")
                    answer = await http.post(f"{url}/chat/completions", json={"max_tokens": 8,
                                             "messages": [{"role": "user", "content": "Which colour is the sky?"}]})  # fmt: skip
                stopped = await client.call_tool("serve_stop", {"service": service})
                assert not stopped.is_error, stopped.content
    assert job["state"] == "SUCCEEDED", (job, {n: (s["state"], s["error"]) for n, s in steps.items()})
    assert all(s["state"] == "succeeded" for s in steps.values()), {n: (s["state"], s["skipped_because"]) for n, s in steps.items()}
    outputs = job["result"]["outputs"]
    # The tuned adapter beat its base on exact match, so it was promoted, exported twice and served.
    assert outputs["tuned_exact_match"] > outputs["base_exact_match"], outputs
    assert outputs["model"] == "quick@v1" and "gguf" in outputs["gguf"] and outputs["url"].startswith("http://127.0.0.1:")
    assert [s["state"] for s in services if s["job_id"] == service] == ["serving"] and health.status_code == 200
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"], answer.text
    assert steps["serve"]["arguments"]["model"] == "quick@v1"
    # The service's API key is a secret: workflow_status shows the step's result without it.
    assert '"api_key": "***"' in steps["serve"]["result"] and api_key not in steps["serve"]["result"]
    # The two exports ran at the same time: each started before the other ended.
    gguf, merged = steps["export_gguf"], steps["export_merged"]
    assert gguf["started_at"] < merged["finished_at"] and merged["started_at"] < gguf["finished_at"], (gguf, merged)
    rows = job_rows(home)
    exports = [rows[child_ids(home, job["id"])[name]] for name in ("export_gguf", "export_merged")]
    assert exports[0]["started_at"] < exports[1]["finished_at"] and exports[1]["started_at"] < exports[0]["finished_at"]
    # Every job-starting step's job is a child of the run; per-step progress reached the client.
    assert {"prepare", "train", "compare", "export_gguf", "export_merged", "serve"} <= set(child_ids(home, job["id"]))
    # job_wait reports the run's progress as it finds it: a step that starts and another that
    # starts before the next read are one note, so no particular step's note is certain.
    assert len({n for n in notes if "steps ended; step " in n}) >= 3, notes
    images = [c for c in status.content if c.type == "image"]
    assert len(images) == 1 and base64.b64decode(images[0].data).startswith(b"\x89PNG")


async def test_sweep_then_promote_registers_and_promotes_the_best_trial(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=200)
    inputs = {"data": "greet.jsonl", "n_trials": 3, "parallel": 1, "max_steps": 20, "eval_steps": 5, "max_eval_loss": 50.0}
    with ServerProcess(home) as server:
        async with Client(f"{server.url}/mcp/") as client:
            job, status, _ = await run_example(client, "sweep-then-promote", inputs)
            model = await client.call_tool("model_get", {"model": "swept"})
    steps = {s["name"]: s for s in status.structured_content["steps"]}
    assert job["state"] == "SUCCEEDED", (job, {n: (s["state"], s["error"]) for n, s in steps.items()})
    outputs = job["result"]["outputs"]
    assert outputs["model"] == "swept@v1" and outputs["stage"] == "staging"
    assert set(outputs["best_params"]) == {"learning_rate", "lora_r"} and outputs["exact_match"] is not None
    version = model.structured_content["model"]
    assert version["stage"] == "staging" and version["sweep"]["sweep_id"] == steps["sweep"]["job_id"], version
