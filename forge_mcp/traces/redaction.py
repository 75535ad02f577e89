"""PII in a trace, masked on the way in with the detector and the masks dataset_prepare uses
(forge_mcp.datasets.pii: [EMAIL], [PHONE], [SECRET]…): message text, tool-call arguments
(the JSON's string values, so the arguments stay valid JSON), metadata values, and the
corrections given as feedback. A stored trace never holds what was found."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from forge_mcp.datasets import pii
from forge_mcp.traces.messages import TraceMessage


def redact_messages(messages: Sequence[TraceMessage]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The messages in OpenAI form with PII masked, and what was masked by kind."""
    found: Counter[str] = Counter()
    out = []
    for message in messages:
        data = message.openai()
        if isinstance(data["content"], str):
            data["content"] = _masked(data["content"], found)
        elif isinstance(data["content"], list):
            data["content"] = [{**part, "text": _masked(part["text"], found)} for part in data["content"]]
        for call in data.get("tool_calls", ()):
            call["function"]["arguments"] = _masked_arguments(call["function"]["arguments"], found)
        out.append(data)
    return out, found


def redact_metadata(metadata: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    found: Counter[str] = Counter()
    return {key: _masked(value, found) if isinstance(value, str) else value for key, value in metadata.items()}, found


def redact_text(text: str) -> tuple[str, Counter[str]]:
    return pii.redact(text)


def _masked(text: str, found: Counter[str]) -> str:
    masked, counts = pii.redact(text)
    found.update(counts)
    return masked


def _masked_arguments(arguments: str, found: Counter[str]) -> str:
    """Masks inside the JSON's strings; written again only when something was masked."""
    counts: Counter[str] = Counter()
    masked = _masked_values(json.loads(arguments), counts)
    if not counts:
        return arguments
    found.update(counts)
    return json.dumps(masked, ensure_ascii=False)


def _masked_values(value: Any, found: Counter[str]) -> Any:
    if isinstance(value, str):
        return _masked(value, found)
    if isinstance(value, list):
        return [_masked_values(item, found) for item in value]
    if isinstance(value, dict):
        return {key: _masked_values(item, found) for key, item in value.items()}
    return value
