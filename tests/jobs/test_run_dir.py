"""RunDir: every path of a run comes from the runs folder and the job id, and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.workspace import Workspace


def test_every_path_of_a_run_lies_in_its_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs", "job_1")
    assert run.path == tmp_path / "runs" / "job_1"
    named = {
        run.spec: "job.json", run.events: "events.jsonl", run.log: "worker.log", run.checkpoints: "checkpoints",
        run.output: "output", run.export: "export", run.merged: "merged", run.launch: "launch.json",
        run.service: "service.json", run.engine_log: "engine.log", run.chart: "compare.png",
        run.disk_probe: "disk_probe.bin", run.attempt_events(2): "events.attempt2.jsonl",
        run.rank_events(3): "events.rank3.jsonl",
    }  # fmt: skip
    for path, name in named.items():
        assert path == run.path / name
    assert run.rank_events(0) == run.events  # rank 0 reports to the job's own events


def test_a_worker_finds_its_run_from_the_folder_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ws" / "runs" / "job_7"
    assert RunDir.at(folder) == RunDir(tmp_path / "ws" / "runs", "job_7")
    monkeypatch.chdir(tmp_path / "..")
    relative = RunDir.at(Path(tmp_path.name) / "ws" / "runs" / "job_7")
    assert relative.path == folder  # made absolute against the working directory once, when given
    assert RunDir.at(folder).sibling("job_6").checkpoints == tmp_path / "ws" / "runs" / "job_6" / "checkpoints"


def test_the_workspace_names_its_runs(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path)
    assert workspace.runs == tmp_path.resolve() / "runs"
    assert workspace.run("job_1") == RunDir(workspace.runs, "job_1")


@pytest.mark.parametrize("job_id", ["", ".", "..", "a/b", "../job_1", "a\\b", "a\0b"])
def test_a_job_id_stays_one_folder_name(tmp_path: Path, job_id: str) -> None:
    with pytest.raises(ValueError, match="job id"):
        RunDir(tmp_path, job_id)


def test_paths_are_shown_relative_to_the_workspace(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "secret" / "ws" / "runs", "job_1")
    assert run.shown() == "runs/job_1"
    assert run.shown(run.export) == "runs/job_1/export"
    assert run.shown(run.output / "adapter") == "runs/job_1/output/adapter"
    with pytest.raises(ValueError):
        run.shown(tmp_path / "elsewhere")


def test_previous_attempts_keep_their_events(tmp_path: Path) -> None:
    run = RunDir(tmp_path, "job_1")
    assert run.previous_events() == []  # no folder yet
    run.path.mkdir()
    run.keep_previous_events(1)  # nothing to keep before the first attempt
    assert run.previous_events() == []
    for attempt in (1, 2, 10):
        run.events.write_text(f"attempt {attempt}\n")
        run.keep_previous_events(attempt)
        assert not run.events.exists()
    run.events.write_text("attempt 11\n")
    (run.path / "events.rank1.jsonl").write_text("")  # not an attempt's
    (run.path / "events.attemptX.jsonl").write_text("")
    kept = run.previous_events()
    assert kept == [run.attempt_events(1), run.attempt_events(2), run.attempt_events(10)]  # by number, not by name
    assert [path.read_text() for path in kept] == ["attempt 1\n", "attempt 2\n", "attempt 10\n"]
    assert run.events.read_text() == "attempt 11\n"
