"""The API a job's code sees inside its worker: `JobContext`, built from the run folder and
its job.json alone.

Where the workspace is, which import roots client paths may lead into, and which earlier
runs a resumed job continues all come from the spec (jobs/spec.py), so the same context
works wherever an executor started the worker.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec
from forge_mcp.workspace import Workspace


class JobCanceled(Exception):
    """Raised in the job's thread when the engine asks the worker to stop (SIGTERM)."""


class JobContext:
    """What a job's code uses to report and to find its folders (`job.run.output`, …)."""

    def __init__(self, run: RunDir, spec: JobSpec, events: EventWriter) -> None:
        self.run = run
        self.spec = spec
        self.job_id = spec.job_id
        self.attempt = spec.attempt
        self._events = events
        self._stop = threading.Event()

    @property
    def parent_id(self) -> str | None:
        """Set when job_resume started this job to repeat that one."""
        return self.spec.parent_id

    @property
    def checkpoint_dir(self) -> Path:
        return self.run.checkpoints

    @property
    def workspace_root(self) -> Path:
        return self.spec.workspace.root

    @property
    def workspace(self) -> Workspace:
        """For checking the paths in the job's arguments again before reading them: a link in a
        model or tokenizer folder can be swapped between submission and now."""
        return Workspace(self.spec.workspace.root, self.spec.workspace.import_roots)

    @property
    def resuming(self) -> bool:
        return self.attempt > 1 or bool(self.spec.repeats)

    def checkpoint_dirs(self) -> list[Path]:
        """Where to look for a checkpoint to resume from: this job's own folder (a retry),
        then those of the jobs it repeats (job_resume), nearest first."""
        return [self.run.checkpoints, *(self.run.sibling(job_id).checkpoints for job_id in self.spec.repeats)]

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self._events.emit("progress", done=done, total=total, message=message)

    def metric(self, name: str, step: float, value: float) -> None:
        self._events.emit("metric", name=name, step=step, value=float(value))

    def log(self, message: str) -> None:
        print(message, flush=True)  # stdout is the run's worker.log

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
        # Ray's cancel of a running task interrupts its main thread as SIGINT would (ray_driver.py).
        signal.signal(signal.SIGINT, on_term)
