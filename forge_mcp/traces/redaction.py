"""PII in a trace, masked on the way in with the detector and the masks dataset_prepare uses
(forge_mcp.datasets.pii: [EMAIL], [PHONE], [SECRET]…): message text, tool-call arguments
(the JSON's string values, so the arguments stay valid JSON), metadata values, and the
corrections given as feedback. Secrets are also found by the name of the field holding them
in a tool's JSON result or arguments (serve_start's `api_key`), and masked there and wherever
else their text appears in the trace (the model repeating the key). A stored trace never
holds what was found."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from forge_mcp.datasets import pii
from forge_mcp.security.secret_fields import secrets_in
from forge_mcp.traces.messages import TraceMessage

SECRET_MASK = "[SECRET]"  # as forge_mcp.datasets.pii masks a secret it recognises by its shape


def redact_messages(messages: Sequence[TraceMessage]) -> tuple[list[dict[str, Any]], Counter[str]]:
    """The messages in OpenAI form with PII masked, and what was masked by kind."""
    found: Counter[str] = Counter()
    out = [message.openai() for message in messages]
    secrets = _named_secrets(out)
    for data in out:
        if isinstance(data["content"], str):
            data["content"] = _masked(data["content"], found, secrets)
        elif isinstance(data["content"], list):
            data["content"] = [{**part, "text": _masked(part["text"], found, secrets)} for part in data["content"]]
        for call in data.get("tool_calls", ()):
            call["function"]["arguments"] = _masked_arguments(call["function"]["arguments"], found, secrets)
    return out, found


def _named_secrets(messages: list[dict[str, Any]]) -> list[str]:
    """The values of fields named like secrets in the JSON of tool results and call arguments."""
    documents = [m["content"] for m in messages if m["role"] == "tool" and isinstance(m["content"], str)]
    documents += [call["function"]["arguments"] for m in messages for call in m.get("tool_calls", ())]
    found = []
    for text in documents:
        try:
            found += secrets_in(json.loads(text))
        except ValueError:
            continue
    return sorted(set(found), key=len, reverse=True)


def redact_metadata(metadata: dict[str, Any]) -> tuple[dict[str, Any], Counter[str]]:
    found: Counter[str] = Counter()
    return {key: _masked(value, found) if isinstance(value, str) else value for key, value in metadata.items()}, found


def redact_text(text: str) -> tuple[str, Counter[str]]:
    return pii.redact(text)


def _masked(text: str, found: Counter[str], secrets: Sequence[str] = ()) -> str:
    for secret in secrets:
        if secret in text:
            found["secret"] += text.count(secret)
            text = text.replace(secret, SECRET_MASK)
    masked, counts = pii.redact(text)
    found.update(counts)
    return masked


def _masked_arguments(arguments: str, found: Counter[str], secrets: Sequence[str] = ()) -> str:
    """Masks inside the JSON's strings; written again only when something was masked."""
    counts: Counter[str] = Counter()
    masked = _masked_values(json.loads(arguments), counts, secrets)
    if not counts:
        return arguments
    found.update(counts)
    return json.dumps(masked, ensure_ascii=False)


def _masked_values(value: Any, found: Counter[str], secrets: Sequence[str] = ()) -> Any:
    if isinstance(value, str):
        return _masked(value, found, secrets)
    if isinstance(value, list):
        return [_masked_values(item, found, secrets) for item in value]
    if isinstance(value, dict):
        return {key: _masked_values(item, found, secrets) for key, item in value.items()}
    return value
