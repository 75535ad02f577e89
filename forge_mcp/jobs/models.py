"""What a job is, as stored and as shown to clients."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.jobs.states import JobState


class Resources(BaseModel):
    gpus: int = Field(0, ge=0, description="GPUs the job needs for its whole run")
    memory_gb: float = Field(0.0, ge=0, description="Host memory the job expects to use")
    processes: int = Field(1, ge=1, description="Processes the job runs as (data-parallel training ranks)")


class Progress(BaseModel):
    done: float | None = None
    total: float | None = None
    message: str | None = None
    percent: float | None = None


class Job(BaseModel):
    """A job as clients see it. `result` is the kind's own result model, as JSON."""

    id: str
    kind: str
    state: JobState
    arguments: dict[str, Any]
    principal: str
    priority: int
    resources: Resources
    attempt: int = Field(description="Which try this is (1 for the first run)")
    max_attempts: int
    parent_id: str | None = Field(None, description="The job this one resumes, for job_resume")
    idempotency_key: str | None = None
    executor: str = Field("local", description="What runs the job's worker (local, or a remote executor)")
    host: str | None = None
    retry_elsewhere: bool = Field(False, description="Runs again on another machine if its host is lost")
    pid: int | None = None
    cancel_requested: bool = False
    progress: Progress
    result: dict[str, Any] | None = None
    reason: str | None = Field(None, description="Why the job ended or was retried, e.g. server_restart")
    error: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    heartbeat_at: float | None = None
    pid_started_at: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        done, total = row["progress_done"], row["progress_total"]
        percent = round(100.0 * done / total, 1) if done is not None and total else None
        return cls(
            id=row["id"],
            kind=row["kind"],
            state=JobState(row["state"]),
            arguments=json.loads(row["arguments"]),
            principal=row["principal"],
            priority=row["priority"],
            resources=Resources(gpus=row["gpus"], memory_gb=row["memory_gb"], processes=row["processes"]),
            attempt=row["attempt"],
            max_attempts=row["max_attempts"],
            parent_id=row["parent_id"],
            idempotency_key=row["idempotency_key"],
            executor=row["executor"],
            host=row["host"],
            retry_elsewhere=bool(row["retry_elsewhere"]),
            pid=row["pid"],
            cancel_requested=bool(row["cancel_requested"]),
            progress=Progress(done=done, total=total, message=row["progress_message"], percent=percent),
            result=json.loads(row["result"]) if row["result"] else None,
            reason=row["reason"],
            error=row["error"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            heartbeat_at=row["heartbeat_at"],
            pid_started_at=row["pid_started_at"],
        )


class JobHandle(BaseModel):
    """What a long-running tool returns at once."""

    job_id: str
    kind: str
    state: JobState
    deduplicated: bool = Field(False, description="True when an idempotency key matched an existing job")
    next_step: str = Field(
        description="How to follow the job",
        default="Call job_wait with this job_id (or job_status to poll); job_logs and job_metrics show details.",
    )


class MetricPoint(BaseModel):
    step: float
    value: float


class MetricSeries(BaseModel):
    name: str
    points: list[MetricPoint]
    truncated: bool = False
