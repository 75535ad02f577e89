"""`runs/<job>/job.json`: everything a worker needs, so it runs from its run folder alone.

The engine writes it before each attempt; `python -m forge_mcp.worker <run folder>` reads
it. Nothing else tells the worker anything: no FORGE_HOME, no other run's files, and of
the environment only FORGE_TEST_JOB_KINDS, which the engine's own tests set (jobs/catalog.py). That is what lets an executor start the worker on another machine: it
brings the run folder there and rewrites `workspace` to where that machine sees the
workspace.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.errors import NotFound
from forge_mcp.jobs.constants import HEARTBEAT_S
from forge_mcp.jobs.run_dir import RunDir

SPEC_VERSION = 1


class WorkerWorkspace(BaseModel):
    """The workspace as the worker's machine sees it: the root client paths are resolved from
    and the import roots they may also lead into (the server's own settings, so the worker
    checks a path exactly as the server did when it accepted the job)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    root: Path
    import_roots: tuple[Path, ...] = ()


class JobSpec(BaseModel):
    # extra="ignore": a worker reads a spec written by a newer server without failing on what it does not use.
    model_config = ConfigDict(frozen=True, extra="ignore")

    version: int = SPEC_VERSION
    job_id: str
    kind: str
    arguments: dict[str, Any]
    attempt: int = Field(ge=1)
    heartbeat_s: float = Field(HEARTBEAT_S, gt=0)
    # The jobs this one repeats through job_resume, nearest first: a resumed run looks for a
    # checkpoint in its own folder, then in theirs. Data, so the worker never reads another run's spec.
    repeats: tuple[str, ...] = ()
    workspace: WorkerWorkspace
    # What the job declared it needs: an executor that schedules (Ray) asks its scheduler for it.
    gpus: int = Field(0, ge=0)
    memory_gb: float = Field(0.0, ge=0)
    processes: int = Field(1, ge=1)  # data-parallel ranks: on Ray, each one is a Ray Train worker
    service: bool = False  # it listens on its machine's loopback: on Ray, it runs on the server's own node

    @property
    def parent_id(self) -> str | None:
        """The job this one repeats directly (job_resume), if any."""
        return self.repeats[0] if self.repeats else None

    def write(self, run: RunDir) -> None:
        """Atomically: a worker, or an executor copying the folder, never reads half a spec."""
        temporary = run.spec.with_name(f".{run.spec.name}.tmp")
        with temporary.open("w") as f:
            f.write(self.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        temporary.replace(run.spec)

    @classmethod
    def read(cls, run: RunDir) -> JobSpec:
        return cls.model_validate_json(run.spec.read_bytes())


class _Repeats(Protocol):
    parent_id: str | None


async def repeat_chain(parent_id: str | None, lookup: Callable[[str], Awaitable[_Repeats]]) -> tuple[str, ...]:
    """`parent_id`, the job it repeats, and so on (JobSpec.repeats), read from the store by `lookup`
    (JobRepository.get): a job in the chain that never launched has no spec, but its row links on."""
    chain: list[str] = []
    while parent_id is not None and parent_id not in chain:
        chain.append(parent_id)
        try:
            parent_id = (await lookup(parent_id)).parent_id
        except NotFound:  # pruned from the store: its checkpoints are gone with it
            break
    return tuple(chain)
