"""The worker checks a job's folders again before reading them: a link planted after the
server accepted the job (here: before the worker starts) is refused with the argument and
the entry named, and nothing is read from outside. Runs the real `python -m
forge_mcp.worker` on a run folder, as the engine does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

MODEL = "models/m/v1"
TOKENIZER = "tok"
CASES: dict[str, tuple[dict[str, Any], str, str]] = {
    # kind: (arguments, argument named in the refusal, entry named)
    "dataset_prepare": ({"dataset_id": "d@v1", "dataset_path": "datasets/d/v1", "kind": "messages", "rows": 1,
                         "output_name": "d", "options": {"tokenizer_path": TOKENIZER, "max_length": 64}},
                        "tokenizer_path", "tokenizer.json"),
    "train": ({"plan": {}, "base_path": MODEL, "dataset_path": "datasets/d/v1"}, "spec.base_model", "config.json"),
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


def run_worker(home: Path, kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Run one job in the real worker, as the engine would; return its error event (a path refusal)."""
    job_id = f"job_{kind.replace('_', '')}"
    run_dir = home / "runs" / job_id
    run_dir.mkdir(parents=True)
    (run_dir / "job.json").write_text(json.dumps({"kind": kind, "arguments": arguments, "attempt": 1}))
    worker = subprocess.run([sys.executable, "-m", "forge_mcp.worker", job_id], cwd=run_dir, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "FORGE_HOME": str(home)})  # fmt: skip
    assert worker.returncode == 1, worker.stdout + worker.stderr
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
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
