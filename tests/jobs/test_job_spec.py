"""job.json: what the engine writes is what the worker reads, written whole, and enough on its
own (the workspace, the import roots and the runs a resumed job repeats travel in it)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from forge_mcp.errors import NotFound
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace, repeat_chain


def spec(tmp_path: Path, **changes: object) -> JobSpec:
    values: dict[str, object] = {
        "job_id": "job_3", "kind": "train", "arguments": {"plan": {"steps": 2}, "base_path": "models/m/v1"},
        "attempt": 2, "heartbeat_s": 0.5, "repeats": ("job_2", "job_1"),
        "workspace": WorkerWorkspace(root=tmp_path / "ws", import_roots=(tmp_path / "imports",)),
    }  # fmt: skip
    return JobSpec.model_validate({**values, **changes})


def test_job_json_round_trips(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "ws" / "runs", "job_3")
    run.path.mkdir(parents=True)
    written = spec(tmp_path)
    written.write(run)
    assert JobSpec.read(run) == written
    assert [p.name for p in run.path.iterdir()] == ["job.json"]  # the temporary file is gone
    on_disk = json.loads(run.spec.read_text())  # plain JSON another machine's worker can read
    assert on_disk["workspace"] == {"root": str(tmp_path / "ws"), "import_roots": [str(tmp_path / "imports")]}
    assert on_disk["repeats"] == ["job_2", "job_1"] and on_disk["version"] == 1
    assert written.parent_id == "job_2"
    assert spec(tmp_path, repeats=()).parent_id is None


def test_a_rewrite_replaces_the_spec_whole(tmp_path: Path) -> None:
    run = RunDir(tmp_path, "job_3")
    run.path.mkdir()
    spec(tmp_path).write(run)
    spec(tmp_path, attempt=3).write(run)
    assert JobSpec.read(run).attempt == 3


def test_a_spec_from_a_newer_server_still_reads(tmp_path: Path) -> None:
    run = RunDir(tmp_path, "job_3")
    run.path.mkdir()
    run.spec.write_text(json.dumps({**json.loads(spec(tmp_path).model_dump_json()), "placement": {"host": "gpu-2"}}))
    assert JobSpec.read(run) == spec(tmp_path)


@pytest.mark.parametrize("missing", ["job_id", "kind", "arguments", "attempt", "workspace"])
def test_a_spec_without_what_the_worker_needs_is_refused(tmp_path: Path, missing: str) -> None:
    values = json.loads(spec(tmp_path).model_dump_json())
    del values[missing]
    with pytest.raises(ValidationError):
        JobSpec.model_validate(values)


def test_the_context_comes_from_the_spec_not_from_where_the_folder_is(tmp_path: Path) -> None:
    # The run folder is not under the workspace root (as on a machine the run was copied to):
    # the workspace and import roots still come from job.json, never from the folder's parents.
    run = RunDir(tmp_path / "elsewhere" / "runs", "job_3")
    run.path.mkdir(parents=True)
    job = JobContext(run, spec(tmp_path), EventWriter(run.events))
    assert job.job_id == "job_3" and job.attempt == 2 and job.parent_id == "job_2" and job.resuming
    assert job.workspace_root == tmp_path / "ws"
    assert job.workspace.root == (tmp_path / "ws").resolve()
    assert job.workspace.import_roots == ((tmp_path / "imports").resolve(),)
    assert job.checkpoint_dir == run.checkpoints
    # Its own checkpoints first (a retry), then the runs it repeats, nearest first.
    assert job.checkpoint_dirs() == [run.checkpoints, run.sibling("job_2").checkpoints, run.sibling("job_1").checkpoints]


def test_a_first_attempt_of_a_new_job_does_not_resume(tmp_path: Path) -> None:
    run = RunDir(tmp_path, "job_3")
    run.path.mkdir()
    job = JobContext(run, spec(tmp_path, attempt=1, repeats=()), EventWriter(run.events))
    assert not job.resuming and job.checkpoint_dirs() == [run.checkpoints]


class Row:
    def __init__(self, parent_id: str | None) -> None:
        self.parent_id = parent_id


async def test_the_repeat_chain_is_read_from_the_store() -> None:
    rows = {"job_3": Row("job_2"), "job_2": Row("job_1"), "job_1": Row(None), "job_9": Row("job_8"),
            "job_8": Row("job_9")}  # fmt: skip

    async def lookup(job_id: str) -> Row:
        if job_id not in rows:
            raise NotFound(f"no job {job_id}")
        return rows[job_id]

    assert await repeat_chain(None, lookup) == ()
    assert await repeat_chain("job_3", lookup) == ("job_3", "job_2", "job_1")
    assert await repeat_chain("job_5", lookup) == ("job_5",)  # pruned from the store: the chain stops there
    assert await repeat_chain("job_9", lookup) == ("job_9", "job_8")  # a loop ends
