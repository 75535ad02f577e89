"""The allowlist of job kinds and the API a job's code sees inside its worker.

A job kind is declared by the capability module it belongs to (`toolset.job_kind`); the
worker finds it by name in that allowlist. A job's stored arguments are JSON values for
the kind's function, never a module, class or code to run.
"""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import BaseModel

from forge_mcp.jobs.constants import RUN_CHECKPOINTS, RUN_SPEC
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.models import Resources
from forge_mcp.workspace import Workspace

JobFn = Callable[..., BaseModel]
ResourceFn = Callable[[dict[str, Any]], Resources]
# Runs in the server once the worker reported success, before the job is SUCCEEDED:
# (services, job, result) -> the result clients see. For outputs that must be published
# (a dataset version, a model) exactly when, and only if, the job succeeds.
PublishFn = Callable[[Any, Any, dict[str, Any]], Awaitable[dict[str, Any]]]


class JobCanceled(Exception):
    """Raised in the job's thread when the engine asks the worker to stop (SIGTERM)."""


@dataclass(frozen=True)
class JobKind:
    name: str
    fn: JobFn  # runs in the worker: fn(job: JobContext, **arguments) -> BaseModel
    resources: ResourceFn  # arguments -> what the job needs, for admission
    checkpoints: bool  # whether a retry resumes from runs/<job>/checkpoints
    publish: PublishFn | None = None
    # Runs until stopped (a model server): admitted in its own slots, and never retried,
    # because a service that crashed must show as FAILED, not quietly restart elsewhere.
    service: bool = False


class JobContext:
    """What a job's code uses to report and to find its folders."""

    def __init__(self, job_id: str, run_dir: Path, attempt: int, events: EventWriter, parent_id: str | None = None) -> None:
        self.job_id = job_id
        self.run_dir = run_dir
        self.attempt = attempt
        self.parent_id = parent_id  # set when job_resume started this job to repeat that one
        self.checkpoint_dir = run_dir / RUN_CHECKPOINTS
        self._events = events
        self._stop = threading.Event()

    @property
    def workspace_root(self) -> Path:
        return self.run_dir.parents[1]

    @property
    def workspace(self) -> Workspace:
        """For checking the paths in the job's arguments again before reading them: a link in a
        model or tokenizer folder can be swapped between submission and now."""
        return Workspace.for_worker(self.workspace_root)

    @property
    def resuming(self) -> bool:
        return self.attempt > 1 or self.parent_id is not None

    def checkpoint_dirs(self) -> list[Path]:
        """Where to look for a checkpoint to resume from: this job's own folder (a retry),
        then those of the jobs it repeats (job_resume), newest first."""
        dirs, parent, seen = [self.checkpoint_dir], self.parent_id, {self.job_id}
        while parent is not None and parent not in seen:
            seen.add(parent)
            run = self.run_dir.parent / parent
            dirs.append(run / RUN_CHECKPOINTS)
            try:
                parent = json.loads((run / RUN_SPEC).read_text()).get("parent_id")
            except (OSError, ValueError):
                break
        return dirs

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self._events.emit("progress", done=done, total=total, message=message)

    def metric(self, name: str, step: float, value: float) -> None:
        self._events.emit("metric", name=name, step=step, value=float(value))

    def log(self, message: str) -> None:
        print(message, flush=True)  # stdout is runs/<job>/worker.log

    def check_canceled(self) -> None:
        """For code that runs long stretches in C: call between steps to stop promptly."""
        if self._stop.is_set():
            raise JobCanceled()

    def install_cancel_handler(self) -> None:
        def on_term(signum: int, frame: FrameType | None) -> None:
            if self._stop.is_set():
                return  # already stopping: a second SIGTERM must not interrupt the cleanup
            self._stop.set()
            raise JobCanceled()

        signal.signal(signal.SIGTERM, on_term)
