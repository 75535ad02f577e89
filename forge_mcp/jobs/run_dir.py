"""Every path of one job's run, from one value: `RunDir(runs, job_id)`.

A run folder is `<workspace>/runs/<job>/`. The engine writes the job's spec there, the
worker reads it and writes its events, log, checkpoints and outputs there, and the server
reads them back. Every one of those paths is a property here, so no other module formats
a run path, and an executor that moves a run to another machine (or back) knows what is in
it. The value only names paths; the few writes that belong to the folder as a whole (keeping
a previous attempt's events) are methods too, so their file names stay in this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

RUNS = "runs"  # the workspace's folder of run folders

SPEC = "job.json"  # what the worker runs (jobs/spec.py): written by the engine, read by the worker
EVENTS = "events.jsonl"  # worker → engine: progress, metrics, heartbeats, outcome
LOG = "worker.log"  # the worker's stdout and stderr
CHECKPOINTS = "checkpoints"  # checkpoint-N folders, each complete once its manifest is written
OUTPUT = "output"  # what a training or prepare job leaves for publishing
EXPORT = "export"  # an export job's files, as published
MERGED = "merged"  # an export's merged model, when the format is built from it
LAUNCH = "launch.json"  # a multi-process training's spec for its torchrun ranks
SERVICE = "service.json"  # a serving job's endpoint, written once it listens
ENGINE_LOG = "engine.log"  # an external serving engine's output
CHART = "compare.png"  # a compare job's chart
STUDY = "study.journal"  # a sweep's Optuna study (its trials, their parameters and values)
CHARTS = "charts"  # a sweep's rendered charts, one file per chart and number of finished trials
WORKFLOW_STATE = "workflow.json"  # a workflow's steps: state, attempt, job, result (written before each is announced)
WORKFLOW_CHART = "workflow.png"  # a workflow's DAG coloured by step state, as workflow_status last drew it
DISK_PROBE = "disk_probe.bin"  # the system benchmark's disk write test

_ATTEMPT_EVENTS = re.compile(r"events\.attempt(\d+)\.jsonl")


@dataclass(frozen=True)
class RunDir:
    runs: Path  # the workspace's runs folder (or wherever an executor put the run folders)
    job_id: str

    def __post_init__(self) -> None:
        # The id becomes a folder name: it must stay one plain segment inside `runs`.
        name = self.job_id
        if not name or name in (".", "..") or any(ch in name for ch in "/\\\0"):
            raise ValueError(f"not a job id usable as a run folder name: {name!r}")

    @classmethod
    def at(cls, folder: Path) -> RunDir:
        """The run whose folder is `folder` (`…/runs/<job>`): how a worker is pointed at its run."""
        folder = folder.absolute()
        return cls(folder.parent, folder.name)

    def sibling(self, job_id: str) -> RunDir:
        """Another job's run in the same runs folder (the runs a resumed job repeats)."""
        return RunDir(self.runs, job_id)

    @property
    def path(self) -> Path:
        return self.runs / self.job_id

    @property
    def spec(self) -> Path:
        return self.path / SPEC

    @property
    def events(self) -> Path:
        return self.path / EVENTS

    def attempt_events(self, attempt: int) -> Path:
        """Where attempt `attempt`'s events are kept once a later attempt starts."""
        return self.path / f"events.attempt{attempt}.jsonl"

    def previous_events(self) -> list[Path]:
        """The kept events of earlier attempts, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := _ATTEMPT_EVENTS.fullmatch(p.name))]
        return [path for _, path in sorted(found)]

    def rank_events(self, rank: int) -> Path:
        """Rank 0 of a multi-process training reports to the job's events; the others keep their own."""
        return self.events if rank == 0 else self.path / f"events.rank{rank}.jsonl"

    @property
    def log(self) -> Path:
        return self.path / LOG

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    @property
    def output(self) -> Path:
        return self.path / OUTPUT

    @property
    def export(self) -> Path:
        return self.path / EXPORT

    @property
    def merged(self) -> Path:
        return self.path / MERGED

    @property
    def launch(self) -> Path:
        return self.path / LAUNCH

    @property
    def service(self) -> Path:
        return self.path / SERVICE

    @property
    def engine_log(self) -> Path:
        return self.path / ENGINE_LOG

    @property
    def chart(self) -> Path:
        return self.path / CHART

    @property
    def study(self) -> Path:
        return self.path / STUDY

    @property
    def charts(self) -> Path:
        return self.path / CHARTS

    @property
    def workflow_state(self) -> Path:
        return self.path / WORKFLOW_STATE

    @property
    def workflow_chart(self) -> Path:
        return self.path / WORKFLOW_CHART

    @property
    def disk_probe(self) -> Path:
        return self.path / DISK_PROBE

    def shown(self, path: Path | None = None) -> str:
        """How a path of this run is shown to clients and stored in results: relative to the
        workspace (`runs/<job>/…`), never the host's absolute path. `path` must lie in the run."""
        inside = PurePosixPath(RUNS, self.job_id)
        return str(inside if path is None else inside / path.relative_to(self.path).as_posix())

    def keep_previous_events(self, attempt: int) -> None:
        """Before attempt `attempt + 1` starts: attempt `attempt`'s events stay readable beside the new ones."""
        if self.events.exists():
            self.events.rename(self.attempt_events(attempt))
