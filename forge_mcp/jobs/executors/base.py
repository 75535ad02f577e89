"""The executor interface: how the engine starts, watches, stops and collects a job's
worker, wherever it runs. Async, because a remote executor waits on the network; the
engine calls it outside its lock and polls its executors concurrently, so a slow one
delays only its own jobs. The engine never assumes the worker shares its disk: events
come back through `poll`, the log through `logs`, outputs through `collect`."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import WorkerWorkspace
from forge_mcp.workspace import IMPORT_ROOTS_ENV

JOB_ENV = "FORGE_JOB_ID"  # every worker and its children carry it: how leftovers are found


def worker_env(job_id: str | None) -> dict[str, str]:
    """The environment of a worker started on this machine for `job_id` (None: a warm worker,
    which sets it once it is given its job). Everything the worker needs is in its run folder's
    job.json; the server's own workspace settings are left out so nothing in the worker can lean
    on them (a remote worker would not have them)."""
    env = {name: value for name, value in os.environ.items() if name not in ("FORGE_HOME", IMPORT_ROOTS_ENV, JOB_ENV)}
    if job_id is not None:
        env[JOB_ENV] = job_id
    return env


@dataclass(frozen=True)
class WorkerHandle:
    """Which worker: enough to find it again after a server restart. The engine stores the
    host, pid and start time on the job and rebuilds the handle from them."""

    job_id: str
    run: RunDir  # the run's folder here, in the workspace (the executor knows where its copy is)
    host: str  # where the worker runs, as the executor's hosts() names it
    pid: int = 0  # the worker's process id on that host; 0 when none was recorded
    started_at: float = 0.0  # the process's creation time: a pid alone may be reused

    @classmethod
    def recorded(cls, job: Job, run: RunDir) -> WorkerHandle:
        """The worker the job's row names (pid 0 when its launch never got as far as recording one)."""
        return cls(job_id=job.id, run=run, host=job.host or "", pid=job.pid or 0, started_at=job.pid_started_at or 0.0)


@dataclass(frozen=True)
class Poll:
    """What a worker did since the last poll."""

    alive: bool
    exit_code: int | None = None  # once not alive, when known (negative: killed by that signal)
    events: Sequence[dict[str, Any]] = field(default_factory=tuple)  # new events, in order (jobs/events.py)


@dataclass(frozen=True)
class LogChunk:
    """A piece of the worker's log: from a cursor, or the end of it."""

    text: str
    next_offset: int  # pass back as `since` to get only newer text
    size: int = 0  # of the whole log, in bytes
    truncated: bool = False  # True when text starts later than asked, to stay within max_bytes


def read_log(path: Path, since: int | None, max_bytes: int) -> LogChunk:
    """A log file on this machine's disk: from `since`, keeping at most the last `max_bytes`."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return LogChunk(text="", next_offset=0, size=0, truncated=False)
    requested = min(since or 0, size)
    start = max(requested, size - max_bytes)
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(size - start)
    return LogChunk(text=data.decode("utf-8", errors="replace"), next_offset=start + len(data), size=size,
                    truncated=start > requested)  # fmt: skip


class Executor(Protocol):
    name: str  # recorded on each job it runs; the key of the engine's executors mapping
    # Where this executor's workers see the workspace; the engine writes it into each job.json.
    worker_workspace: WorkerWorkspace

    def hosts(self) -> Mapping[str, Capacity]:
        """The hosts it places jobs on, and how much each takes at once. Empty: the executor
        holds no slots (work run by the server itself), and its jobs start as soon as queued."""
        ...

    async def launch(self, job_id: str, run: RunDir, host: str | None) -> WorkerHandle:
        """Start `python -m forge_mcp.worker <run folder>` on `host` (one of hosts(); None when it
        has none) for the run whose job.json is written. Raises OSError when it cannot."""
        ...

    async def poll(self, handle: WorkerHandle) -> Poll:
        """Alive or not, and the events reported since the last poll. Once a poll says not alive,
        every event the worker wrote is in it or an earlier one. A handle this executor cannot
        see (another host's process) is not alive."""
        ...

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        """From `since` (default: the start) to the end, keeping at most the last `max_bytes`."""
        ...

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        """Bring these paths of the run (workspace paths) home, before the job is published."""
        ...

    async def stop(self, handle: WorkerHandle) -> None:
        """Ask the worker to stop: SIGTERM to its process group."""
        ...

    async def kill(self, handle: WorkerHandle) -> None:
        """SIGKILL the worker and every process of its job, wherever they went."""
        ...


def not_configured(name: str, configured: Mapping[str, Executor]) -> str:
    """Why a job recorded with executor `name` cannot run here, for the job's error."""
    have = ", ".join(sorted(configured)) or "none"
    return (f"this job runs on executor {name!r}, which this server does not have configured (it has: {have}); "
            "configure it again and use job_resume, or submit the job again")  # fmt: skip
