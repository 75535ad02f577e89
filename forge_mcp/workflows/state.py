"""A workflow run's durable record of its steps (runs/<run>/workflow.json): each step's state,
attempt, job, timing, result and error. Written atomically before a change is announced, so
a restarted server knows which steps finished (never rerun), which ran a job (re-attached)
and which had not started."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.security.secret_fields import hidden, secrets_in

StepState = Literal["pending", "running", "succeeded", "failed", "skipped", "canceled"]
TERMINAL_STEP_STATES = frozenset({"succeeded", "failed", "skipped", "canceled"})
# Argument names whose values are never shown (workflow_status) or logged.
REDACTED = "***"


class StepRecord(BaseModel):
    state: StepState = "pending"
    attempt: int = 0
    job_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    arguments: dict[str, Any] | None = Field(None, description="As resolved for the newest attempt, secrets redacted")
    result: Any = None
    error: str | None = None
    skipped_because: str | None = None


class WorkflowState(BaseModel):
    steps: dict[str, StepRecord]

    @classmethod
    def load(cls, path: Path, steps: list[str]) -> WorkflowState:
        """The saved record, or every step pending; a step the file lacks is pending."""
        saved = cls.model_validate_json(path.read_bytes()) if path.exists() else cls(steps={})
        return cls(steps={name: saved.steps.get(name, StepRecord()) for name in steps})

    def snapshot(self) -> str:
        return self.model_dump_json(indent=1)


def save_snapshot(path: Path, snapshot: str) -> None:
    """Atomically: a reader (workflow_status, a restarted server) never sees half a record.
    One writer at a time (the run's loop holds a lock), as the temporary file's name is fixed."""
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as f:
        f.write(snapshot)
        f.flush()
        os.fsync(f.fileno())
    temporary.replace(path)


def redacted(value: Any) -> Any:
    """`value` with every field named like a secret shown as ***, and that secret's text wherever
    else it appears (serve_start's example request carries its API key)."""
    return hidden(value, secrets_in(value), REDACTED)
