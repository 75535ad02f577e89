"""A JobContext as the worker builds it (a run folder and its job.json), for tests that run
a job's body in the test process."""

from __future__ import annotations

from pathlib import Path

from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace


def job_context(folder: Path, *, workspace: Path, kind: str = "test", attempt: int = 1) -> JobContext:
    """The job whose run folder is `folder`, in the workspace at `workspace`; job.json is written."""
    run = RunDir.at(folder)
    run.path.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(job_id=run.job_id, kind=kind, arguments={}, attempt=attempt, workspace=WorkerWorkspace(root=workspace))
    spec.write(run)
    return JobContext(run, spec, EventWriter(run.events))
