"""Exact resume, on both backends and for GRPO: kill -9 the server and the training worker mid-run;
the restarted server retries the job, which continues from the newest verified checkpoint and
logs the same loss curve (GRPO: the same sampled answers' rewards) as an uninterrupted run with
the same seed (within 1e-4 relative)."""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path

import pytest
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from forge_mcp.training.checkpoints import MANIFEST
from forge_mcp.workspace import Workspace
from tests.e2e.jobs_db import poll_until
from tests.e2e.test_training_mcp import greetings
from tests.e2e.test_training_methods import colour_chats, write_jsonl

pytestmark = pytest.mark.e2e
SPEC = {"base_model": "models/tiny", "dataset": "greet", "max_steps": 30, "save_steps": 10, "logging_steps": 1}


async def prepare_data(url: str) -> None:
    async with Client(f"{url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
        prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})


async def start(url: str, backend: str = "hf", spec: dict | None = None) -> str:
    async with Client(f"{url}/mcp/") as client:
        started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec or {**SPEC, "backend": backend}})
        assert not started.is_error, started.content
        return started.structured_content["job_id"]


async def finish(url: str, job_id: str, name: str = "loss") -> tuple[dict, dict[float, float]]:
    async with Client(f"{url}/mcp/") as client:
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 300})
        metrics = await client.call_tool("job_metrics", {"job_id": job_id, "names": [name]})
    [series] = [s for s in metrics.structured_content["series"] if s["name"] == name]
    return waited.structured_content["job"], {p["step"]: p["value"] for p in series["points"]}


@pytest.mark.parametrize("backend", ["hf", "mlx"])
def test_a_run_killed_mid_training_resumes_with_the_same_loss_curve(tmp_path: Path, tiny_model: Path, backend: str) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl")
    with ServerProcess(home) as live:
        asyncio.run(prepare_data(live.url))
        reference_job, reference = asyncio.run(finish(live.url, asyncio.run(start(live.url, backend))))
    assert reference_job["state"] == "SUCCEEDED" and sorted(reference) == [float(s) for s in range(1, 31)]
    assert reference[30.0] < 0.8 * reference[1.0]  # it learns

    first = ServerProcess(home)
    first.start()
    job_id = asyncio.run(start(first.url, backend))
    manifest = Workspace(home).run(job_id).checkpoints / "checkpoint-10" / MANIFEST
    poll_until(manifest.exists, 120, "the first verified checkpoint")
    first.process.send_signal(signal.SIGKILL)  # the machine goes down: server and worker
    first.process.wait(10)
    for process in job_processes(job_id):
        process.kill()
    with ServerProcess(home) as second:
        job, resumed = asyncio.run(finish(second.url, job_id))
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 2, job
    assert job["result"]["resumed_from"] in ("checkpoint-10", "checkpoint-20")
    assert sorted(resumed) == sorted(reference)
    worst = max(abs(resumed[s] - reference[s]) / abs(reference[s]) for s in reference)
    assert worst <= 1e-4, {s: (reference[s], resumed[s]) for s in reference}


def test_cancel_mid_training_is_clean_and_job_resume_continues_from_its_checkpoint(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl")
    spec = {**SPEC, "max_steps": 80, "save_steps": 2}

    async def scenario(url: str) -> tuple[str, dict, dict]:
        async with Client(f"{url}/mcp/") as client:
            started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec})
            job_id = started.structured_content["job_id"]
            manifest = Workspace(home).run(job_id).checkpoints / "checkpoint-2" / MANIFEST
            await asyncio.to_thread(poll_until, manifest.exists, 120, "the first verified checkpoint")
            canceled = await client.call_tool("job_cancel", {"job_id": job_id})
            again = await client.call_tool("job_resume", {"job_id": job_id})
            waited = await client.call_tool("job_wait", {"job_id": again.structured_content["job_id"], "timeout_s": 300})
            return job_id, canceled.structured_content, waited.structured_content["job"]

    with ServerProcess(home) as live:
        asyncio.run(prepare_data(live.url))
        job_id, canceled, resumed = asyncio.run(scenario(live.url))
    assert canceled["state"] == "CANCELED"
    assert not job_processes(job_id)
    assert not (Workspace(home).run(job_id).output / "adapter").exists()  # nothing half-written looks finished
    assert resumed["state"] == "SUCCEEDED" and resumed["parent_id"] == job_id, resumed
    assert resumed["result"]["resumed_from"] is not None and resumed["result"]["steps"] == 80


def test_a_grpo_run_killed_mid_training_samples_and_scores_the_same_answers_after_resuming(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    write_jsonl(home / "colours.jsonl", colour_chats(48))
    spec = {"base_model": "models/tiny", "dataset": "colours", "method": "grpo", "rewards": [{"name": "exact_match"}],
            "max_steps": 16, "save_steps": 4, "logging_steps": 1, "batch_size": 8, "num_generations": 4,
            "max_completion_length": 16}  # fmt: skip

    async def import_colours(url: str) -> None:
        async with Client(f"{url}/mcp/") as client:
            await client.call_tool("dataset_import", {"path": "colours.jsonl", "name": "colours"})

    with ServerProcess(home) as live:
        asyncio.run(import_colours(live.url))
        reference_job, reference = asyncio.run(finish(live.url, asyncio.run(start(live.url, spec=spec)), "reward"))
    assert reference_job["state"] == "SUCCEEDED" and sorted(reference) == [float(s) for s in range(1, 17)]

    first = ServerProcess(home)
    first.start()
    job_id = asyncio.run(start(first.url, spec=spec))
    manifest = Workspace(home).run(job_id).checkpoints / "checkpoint-8" / MANIFEST
    poll_until(manifest.exists, 120, "a verified checkpoint halfway")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    for process in job_processes(job_id):
        process.kill()
    with ServerProcess(home) as second:
        job, resumed = asyncio.run(finish(second.url, job_id, "reward"))
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 2, job
    assert job["result"]["resumed_from"] in ("checkpoint-8", "checkpoint-12")
    assert resumed == reference, {s: (reference[s], resumed.get(s)) for s in reference}
