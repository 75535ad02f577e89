"""A worker's events file ends with its one terminal event: a heartbeat from the other thread
that lands after the job's end is dropped, so the engine never reads a live-looking worker
after its outcome (a heartbeat after `canceled` once made a stop look unreported)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from forge_mcp.jobs.events import EventWriter


def test_nothing_follows_the_terminal_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.emit("started", pid=1, attempt=1)
    writer.emit("heartbeat")
    writer.emit("canceled")
    beats = [threading.Thread(target=writer.emit, args=("heartbeat",)) for _ in range(8)]
    for beat in beats:
        beat.start()
    for beat in beats:
        beat.join()
    writer.emit("result", result={})
    writer.close()
    assert [json.loads(line)["type"] for line in path.read_text().splitlines()] == ["started", "heartbeat", "canceled"]
