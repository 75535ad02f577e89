"""What the job engine's parts share inside one server process: the workers it supervises
right now, the lock around its state transitions, and the wake-up of its loop. Everything
else about a job lives in the database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from forge_mcp.jobs.events import EventTail
from forge_mcp.jobs.executor import WorkerHandle


@dataclass
class Supervision:
    """One worker this process supervises, and how far it has read that worker's events."""

    handle: WorkerHandle
    tail: EventTail
    last_beat: float
    outcome: dict[str, Any] | None = None
    kill_at: float | None = None
    heartbeat_written: float = 0.0
    metric_points: list[tuple[str, float, float, float]] = field(default_factory=list)


@dataclass
class EngineState:
    running: dict[str, Supervision] = field(default_factory=dict)  # job id -> its supervised worker
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # held around state transitions
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # set when the loop should tick now
