"""The kinds of training data we recognise, how sure we are, and their canonical forms.

Canonical kinds are what training reads: `messages` (OpenAI chat, system and tool calls
included), `preference` (prompt/chosen/rejected), `labeled` (prompt/completion with a
true/false label: one answer judged good or bad, what KTO learns from) and `text`. The other kinds are source
layouts that normalise into one of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class DatasetKind(StrEnum):
    MESSAGES = "messages"
    SHAREGPT = "sharegpt"
    ALPACA = "alpaca"
    PREFERENCE = "preference"
    LABELED = "labeled"
    COMPLETION = "completion"
    TEXT = "text"


CANONICAL = {
    DatasetKind.MESSAGES: DatasetKind.MESSAGES,
    DatasetKind.SHAREGPT: DatasetKind.MESSAGES,
    DatasetKind.ALPACA: DatasetKind.MESSAGES,
    DatasetKind.COMPLETION: DatasetKind.MESSAGES,
    DatasetKind.PREFERENCE: DatasetKind.PREFERENCE,
    DatasetKind.LABELED: DatasetKind.LABELED,
    DatasetKind.TEXT: DatasetKind.TEXT,
}
CHAT_ROLES = frozenset({"system", "user", "assistant", "tool"})
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "function_call": "assistant", "observation": "tool", "tool": "tool"}  # fmt: skip
# When two kinds fit a row equally, the more specific one wins.
PRIORITY = [DatasetKind.PREFERENCE, DatasetKind.LABELED, DatasetKind.MESSAGES, DatasetKind.SHAREGPT, DatasetKind.ALPACA,
            DatasetKind.COMPLETION, DatasetKind.TEXT]  # fmt: skip


class InvalidRow(ValueError):
    """Why a row does not fit a kind; the message names the field."""


class Detection(BaseModel):
    kind: DatasetKind | None = Field(description="The best-fitting kind, or null when no kind fits")
    confidence: float = Field(description="Share of sampled rows that fit the kind (0..1)")
    scores: dict[str, float] = Field(description="Share of sampled rows that fit each kind")
    sampled_rows: int
    ambiguous: bool = Field(description="True when another kind fits almost as well; pass `kind` to decide")


def _str(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise InvalidRow(f"'{key}' must be a string" if key in row else f"'{key}' is missing")
    return value


def _chat(value: Any, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise InvalidRow(f"'{field}' must be a non-empty list of messages")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise InvalidRow(f"'{field}[{i}]' must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in CHAT_ROLES:
            raise InvalidRow(f"'{field}[{i}].role' must be one of system, user, assistant, tool")
        content = message.get("content")
        if content is None and not message.get("tool_calls"):
            raise InvalidRow(f"'{field}[{i}].content' is missing (and there are no tool_calls)")
        if content is not None and not isinstance(content, str):
            raise InvalidRow(f"'{field}[{i}].content' must be a string")
        out.append({k: v for k, v in message.items() if v is not None})
    return out


def to_canonical(row: dict[str, Any], kind: DatasetKind) -> dict[str, Any]:
    """The row in its canonical form, or InvalidRow saying which field is wrong."""
    if kind is DatasetKind.MESSAGES:
        messages = _chat(row.get("messages"), "messages")
        if not any(m["role"] == "assistant" for m in messages):
            raise InvalidRow("'messages' has no assistant turn to learn from")
        return {"messages": messages}
    if kind is DatasetKind.SHAREGPT:
        turns = row.get("conversations")
        if not isinstance(turns, list) or not turns:
            raise InvalidRow("'conversations' must be a non-empty list of {from, value} turns")
        messages = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, dict) or turn.get("from") not in SHAREGPT_ROLES or not isinstance(turn.get("value"), str):
                raise InvalidRow(f"'conversations[{i}]' must have 'from' (human, gpt, system…) and a string 'value'")
            messages.append({"role": SHAREGPT_ROLES[turn["from"]], "content": turn["value"]})
        return to_canonical({"messages": messages}, DatasetKind.MESSAGES)
    if kind is DatasetKind.ALPACA:
        instruction, output = _str(row, "instruction"), _str(row, "output")
        extra = row.get("input")
        if extra is not None and not isinstance(extra, str):
            raise InvalidRow("'input' must be a string when present")
        prompt = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        if isinstance(row.get("system"), str) and row["system"]:
            messages.insert(0, {"role": "system", "content": row["system"]})
        return {"messages": messages}
    if kind is DatasetKind.COMPLETION:
        return {"messages": [{"role": "user", "content": _str(row, "prompt")},
                             {"role": "assistant", "content": _str(row, "completion")}]}  # fmt: skip
    if kind is DatasetKind.PREFERENCE:
        pair = {"chosen": _side(row, "chosen"), "rejected": _side(row, "rejected")}
        return {"prompt": _side(row, "prompt"), **pair} if "prompt" in row else pair
    if kind is DatasetKind.LABELED:
        label = row.get("label")
        if not isinstance(label, bool):
            raise InvalidRow("'label' must be true (a good answer) or false (a bad one)" if "label" in row else "'label' is missing")
        return {"prompt": _side(row, "prompt"), "completion": _side(row, "completion"), "label": label}
    if kind is DatasetKind.TEXT:
        text = _str(row, "text")
        if not text.strip():
            raise InvalidRow("'text' is empty")
        return {"text": text}
    raise InvalidRow(f"unknown kind {kind}")


def _side(row: dict[str, Any], key: str) -> str | list[dict[str, Any]]:
    """A preference field: a string, or a list of chat messages."""
    value = row.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return _chat(value, key)
    raise InvalidRow(f"'{key}' must be a string or a list of messages" if key in row else f"'{key}' is missing")


def fits(row: Any, kind: DatasetKind) -> bool:
    if not isinstance(row, dict):
        return False
    try:
        to_canonical(row, kind)
    except InvalidRow:
        return False
    return True


def detect(rows: Iterable[Any]) -> Detection:
    sample = list(rows)
    counts: Counter[DatasetKind] = Counter()
    for row in sample:
        for kind in PRIORITY:
            if fits(row, kind):
                counts[kind] += 1
    n = max(len(sample), 1)
    scores = {kind.value: round(counts[kind] / n, 4) for kind in PRIORITY}
    best = max(PRIORITY, key=lambda k: (counts[k], -PRIORITY.index(k)))
    if counts[best] == 0:
        return Detection(kind=None, confidence=0.0, scores=scores, sampled_rows=len(sample), ambiguous=False)
    runner_up = max((counts[k] for k in PRIORITY if k is not best), default=0)
    return Detection(
        kind=best,
        confidence=round(counts[best] / n, 4),
        scores=scores,
        sampled_rows=len(sample),
        ambiguous=runner_up >= 0.9 * counts[best],
    )
