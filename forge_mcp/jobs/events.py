"""Events between a worker and the engine, and from the engine to the protocol surfaces.

Worker → engine: one JSON object per line appended to runs/<job>/events.jsonl. A file,
not a pipe, so a worker outlives a server crash and the restarted server reads on
where the old one stopped. Engine → surfaces: an in-process bus that MCP progress
notifications, resource updates and A2A status updates listen on.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from forge_mcp.jobs.models import Job

EventType = Literal["started", "progress", "metric", "heartbeat", "result", "error", "canceled"]
TERMINAL_EVENTS = frozenset({"result", "error", "canceled"})


class EventWriter:
    """Worker side. Thread-safe: the heartbeat thread writes beside the job's own thread. The
    terminal event (result, error, canceled) is the last line: anything emitted after it (a
    heartbeat that lost the race with the job's end) is dropped."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._ended = False

    def emit(self, type: EventType, **payload: Any) -> None:
        line = json.dumps({"type": type, "at": time.time(), **payload}, separators=(",", ":"))
        with self._lock:
            if self._ended:
                return
            self._file.write(line + "\n")
            self._file.flush()
            if type in TERMINAL_EVENTS:
                os.fsync(self._file.fileno())
                self._ended = True

    def close(self) -> None:
        with self._lock:
            self._file.close()


class EventTail:
    """Engine side: yields the complete lines appended since the last read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        used, events = complete_events(data)
        self.offset += used
        return events


def complete_events(data: bytes) -> tuple[int, list[dict[str, Any]]]:
    """The events in the complete lines of `data` (read from an events file at some offset), and
    how many bytes those lines take: a line still being written is left for the next read."""
    end = data.rfind(b"\n")
    if end < 0:
        return 0, []
    events = []
    for raw in data[: end + 1].splitlines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue  # a torn line from a killed worker; the rest of the file is still good
        if isinstance(event, dict) and "type" in event:
            events.append(event)
    return end + 1, events


@dataclass(frozen=True)
class JobUpdate:
    """Something changed about a job: its state, its progress, or new metric points."""

    job: Job
    what: Literal["state", "progress", "metrics"]


class JobEventBus:
    """In-process fan-out. Each subscriber has its own queue; a slow one drops old updates
    rather than blocking the engine."""

    QUEUE_SIZE = 256

    def __init__(self) -> None:
        self._subscribers: dict[int, tuple[str | None, asyncio.Queue[JobUpdate]]] = {}
        self._listeners: list[Callable[[JobUpdate], Any]] = []
        self._next = 0

    def publish(self, update: JobUpdate) -> None:
        for job_id, queue in list(self._subscribers.values()):
            if job_id is not None and job_id != update.job.id:
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(update)
        for listener in list(self._listeners):
            listener(update)

    def add_listener(self, listener: Callable[[JobUpdate], Any]) -> None:
        """Synchronous callbacks for every update (used to schedule resource notifications)."""
        self._listeners.append(listener)

    @contextmanager
    def subscribe(self, job_id: str | None = None) -> Iterator[asyncio.Queue[JobUpdate]]:
        key = self._next
        self._next += 1
        queue: asyncio.Queue[JobUpdate] = asyncio.Queue(self.QUEUE_SIZE)
        self._subscribers[key] = (job_id, queue)
        try:
            yield queue
        finally:
            del self._subscribers[key]
