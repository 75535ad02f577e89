"""The worker runs from its run folder alone: job.json says where the workspace and the import
roots are, so no FORGE_HOME and no working directory is needed (here: FORGE_HOME unset, the
working directory elsewhere). And it checks a job's folders again before reading them: a link
planted after the server accepted the job (here: before the worker starts) is refused with
the argument and the entry named, and nothing is read from outside. Runs the real `python -m
forge_mcp.worker <run folder>`, as the executor does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace

MODEL = "models/m/v1"
TOKENIZER = "tok"
# A checked plan as train_plan returns it (the train kind's arguments are typed); the numbers do not matter here.
PLAN = {"spec": {"base_model": MODEL, "dataset": "d"}, "backend": "hf", "device": "cpu", "dtype": "float32",
        "base": {"path": MODEL, "architecture": "llama", "parameters": 1, "hidden_size": 1, "layers": 1, "vocab_size": 1,
                 "max_positions": None, "weights_dtype": "float32"},
        "dataset_id": "d@v1", "dataset_fingerprint": "0", "train_rows": 1, "eval_rows": None, "trainable_parameters": 1,
        "steps": 1, "tokens": 1, "estimated_seconds": None, "throughput_source": "none", "warnings": [], "suggestions": [],
        "memory": {"weights_gib": 0, "adapter_gib": 0, "gradients_gib": 0, "optimizer_gib": 0, "activations_gib": 0,
                   "overhead_gib": 0, "total_gib": 0, "available_gib": 1, "fits": True}}  # fmt: skip
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    # kind: (arguments, argument named in the refusal, entry named)
    "dataset_prepare": ({"dataset_id": "d@v1", "dataset_path": "datasets/d/v1", "kind": "messages", "rows": 1,
                         "output_name": "d", "options": {"tokenizer_path": TOKENIZER, "max_length": 64}},
                        "tokenizer_path", "tokenizer.json"),
    "train": ({"plan": PLAN, "base_path": MODEL, "dataset_path": "datasets/d/v1"}, "spec.base_model", "config.json"),
    "evaluate": ({"label": "m", "model_path": MODEL, "adapter_path": None, "dataset_path": "datasets/d/v1",
                  "dataset_id": "d@v1", "split": "test", "limit": 1, "decoding": {}}, "model", "config.json"),
    "export": ({"model_id": "m@v1", "model_path": MODEL, "adapter_path": None, "format": "merged", "quantization": None},
               "model", "config.json"),
    "serve": ({"model_id": "m@v1", "engine": "transformers", "model_path": MODEL, "adapter_path": None, "gguf_file": None,
               "port": 0, "context_length": 512, "external_command": None, "startup_timeout_s": 10}, "model", "config.json"),
    "generate": ({"model_id": "m@v1", "model_path": MODEL, "adapter_path": None, "request": {}}, "model", "config.json"),
}  # fmt: skip


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home, outside = tmp_path / "ws", tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text('{"model_type": "llama"}')
    (outside / "tokenizer.json").write_text("{}")
    for folder, entry in ((home / MODEL, "config.json"), (home / TOKENIZER, "tokenizer.json")):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
        os.symlink(outside / entry, folder / entry)  # swapped in after submission
    return home


def start_worker(home: Path, kind: str, arguments: dict[str, Any], import_roots: tuple[Path, ...] = (),
                 runs: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:  # fmt: skip
    """Run one job in the real worker from its run folder alone: FORGE_HOME and FORGE_IMPORT_ROOTS
    unset, the working directory elsewhere. Returns the process and the job's events."""
    run = RunDir(runs or home / "runs", f"job_{kind.replace('_', '')}")
    run.path.mkdir(parents=True)
    JobSpec(job_id=run.job_id, kind=kind, arguments=arguments, attempt=1,
            workspace=WorkerWorkspace(root=home, import_roots=import_roots)).write(run)  # fmt: skip
    elsewhere = home.parent / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    env = {name: value for name, value in os.environ.items() if name not in ("FORGE_HOME", "FORGE_IMPORT_ROOTS")}
    worker = subprocess.run([sys.executable, "-m", "forge_mcp.worker", str(run.path)], cwd=elsewhere,
                            capture_output=True, text=True, timeout=120, env={**env, TEST_KINDS_ENV: "1"})  # fmt: skip
    assert not any(elsewhere.iterdir()), "the worker wrote into its working directory"
    return worker, [json.loads(line) for line in run.events.read_text().splitlines()]


def run_worker(home: Path, kind: str, arguments: dict[str, Any], import_roots: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Run one job in the real worker, as the engine would; return its error event (a path refusal)."""
    worker, events = start_worker(home, kind, arguments, import_roots)
    assert worker.returncode == 1, worker.stdout + worker.stderr
    error = next(e for e in events if e["type"] == "error")
    assert error["reason"] == "path_refused"
    return error


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_worker_refuses_a_link_out_before_reading(home: Path, kind: str) -> None:
    arguments, field, entry = CASES[kind]
    error = run_worker(home, kind, arguments)
    assert error["message"].startswith(f"argument '{field}': '{entry}' inside it is a symbolic link to a place outside")
    assert str(home.parent) not in error["message"]


DATASET_CASES: dict[str, dict[str, Any]] = {
    "dataset_prepare": {"dataset_id": "d@v1", "dataset_path": "datasets/d/v1", "kind": "messages", "rows": 1,
                        "output_name": "d", "options": {}},
    "evaluate": {"label": "m", "model_path": "clean", "adapter_path": None, "dataset_path": "datasets/d/v1",
                 "dataset_id": "d@v1", "split": "test", "limit": 1, "decoding": {}},
    "compare": {"a": {"label": "a", "model_path": "clean", "adapter_path": None},
                "b": {"label": "b", "model_path": "clean", "adapter_path": None},
                "dataset_path": "datasets/d/v1", "dataset_id": "d@v1", "split": "test", "limit": 1, "decoding": {}},
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(DATASET_CASES))
def test_the_worker_refuses_a_dataset_folder_whose_rows_link_out(home: Path, kind: str) -> None:
    (home / "clean").mkdir()
    (home / "datasets" / "d" / "v1").mkdir(parents=True)
    os.symlink(home.parent / "outside" / "config.json", home / "datasets" / "d" / "v1" / "data.parquet")
    error = run_worker(home, kind, DATASET_CASES[kind])
    assert error["message"].startswith("argument 'dataset': 'data.parquet' inside it is a symbolic link to a place outside")


def test_a_worker_runs_from_its_run_folder_alone(tmp_path: Path) -> None:
    # The run folder is not under the workspace root either (as where an executor copied it):
    # nothing is derived from where the folder sits.
    home = tmp_path / "ws"
    home.mkdir()
    worker, events = start_worker(home, "test_events", {"progress": 2, "metrics": 1, "log_lines": 1},
                                  runs=tmp_path / "copied" / "runs")  # fmt: skip
    assert worker.returncode == 0, worker.stdout + worker.stderr
    assert [e["type"] for e in events][0] == "started" and events[-1]["type"] == "result"
    assert events[-1]["result"] == {"progress": 2, "metrics": 1, "log_lines": 1}


def test_the_import_roots_come_from_job_json(tmp_path: Path) -> None:
    # A model in an import root whose config links out: with the root in job.json the worker
    # checks inside the folder (and refuses the link); without it, the folder itself is outside.
    home, imports, outside = tmp_path / "ws", tmp_path / "imports", tmp_path / "outside"
    for folder in (home, imports / "m", outside):
        folder.mkdir(parents=True)
    (outside / "config.json").write_text("{}")
    os.symlink(outside / "config.json", imports / "m" / "config.json")
    arguments = {"model_id": "m@v1", "model_path": str(imports / "m"), "adapter_path": None, "request": {}}
    inside = run_worker(home, "generate", arguments, import_roots=(imports,))
    assert inside["message"].startswith("argument 'model': 'config.json' inside it is a symbolic link to a place outside")
    shutil.rmtree(home / "runs")
    refused = run_worker(home, "generate", arguments)
    assert refused["message"].startswith("argument 'model': the path is outside the workspace;")


def test_a_worker_without_a_readable_job_json_stops_with_a_usage_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs", "job_1")
    run.path.mkdir(parents=True)
    env = {name: value for name, value in os.environ.items() if name != "FORGE_HOME"}
    missing = subprocess.run([sys.executable, "-m", "forge_mcp.worker", str(run.path)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    JobSpec(job_id="job_2", kind="test_sleep", arguments={"seconds": 0}, attempt=1,
            workspace=WorkerWorkspace(root=tmp_path)).write(run)  # fmt: skip
    other = subprocess.run([sys.executable, "-m", "forge_mcp.worker", str(run.path)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, env=env)  # fmt: skip
    assert other.returncode == 2 and "job_2's, not job_1's" in other.stderr
    assert not run.events.exists()  # nothing ran
