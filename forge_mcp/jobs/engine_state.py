"""What the job engine's parts share inside one server process: the workers it supervises
right now, the lock around its state transitions, and the wake-up of its loop. Everything
else about a job lives in the database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from forge_mcp.jobs.executors.base import Executor, Poll, WorkerHandle


@dataclass
class Supervision:
    """One worker this process supervises, through the executor that runs it."""

    handle: WorkerHandle
    executor: Executor
    last_beat: float
    outcome: dict[str, Any] | None = None
    kill_at: float | None = None
    heartbeat_written: float = 0.0
    metric_points: list[tuple[str, float, float, float]] = field(default_factory=list)
    # The executor's poll in flight, if it did not answer within a tick; taken up at a later one.
    polling: asyncio.Task[Poll] | None = None
    # Why the last poll failed (a host out of reach), until one answers again.
    poll_error: str | None = None


@dataclass
class EngineState:
    running: dict[str, Supervision] = field(default_factory=dict)  # job id -> its supervised worker
    # Held only around state transitions, never across a call to an executor, so that a slow
    # executor never holds up job_status, job_cancel or a submission.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set when the loop should tick now
