"""Keeping a held-out set held out: a trace that asked one of its questions gives no training
row (neither an SFT row nor a DPO pair), so a flywheel cycle never trains on what it is scored
on. A question is the text of a user message (of a chat row, or a row's instruction or prompt),
compared with whitespace collapsed and case folded."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forge_mcp.datasets.inspect import read_rows
from forge_mcp.flywheel.rows import chat
from forge_mcp.traces.models import TraceDetail


def held_out_questions(folder: Path) -> frozenset[str]:
    """The questions of every row of the dataset version stored in `folder`."""
    return frozenset(_key(text) for _, raw in read_rows(folder) for text in _questions(json.loads(raw)))


def asks_held_out(trace: TraceDetail, questions: frozenset[str]) -> bool:
    return any(_key(message.get("content") or "") in questions
               for message in chat(trace.messages) if message["role"] == "user")  # fmt: skip


def _questions(row: dict[str, Any]) -> Iterable[str]:
    for field in ("messages", "prompt"):
        if isinstance(row.get(field), list):
            yield from (m.get("content") or "" for m in chat(row[field]) if m.get("role") == "user")
    for field in ("instruction", "prompt"):
        if isinstance(row.get(field), str):
            yield row[field]


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()
