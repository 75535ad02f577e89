"""Secrets found by the name of the field that holds them (`api_key`, `token`, `password`…):
the values of such fields in JSON, and that same text wherever else it appears, hidden
behind a mask. Used where results are shown or kept beyond the call that made them: a
workflow's status, a conversation stored as a trace (serve_start's result carries its
service's key, and its example request the key again)."""

from __future__ import annotations

import re
from typing import Any

SECRET_NAME = re.compile(r"(api_key|apikey|token|secret|password)$", re.IGNORECASE)
MIN_SECRET_CHARS = 8  # shorter values are not worth hiding everywhere ("", "none", a placeholder)


def secrets_in(value: Any) -> list[str]:
    """The text of every field named like a secret, anywhere in `value`, longest first."""
    return sorted(set(_secrets(value)), key=len, reverse=True)


def hidden(value: Any, secrets: list[str], mask: str) -> Any:
    """`value` with fields named like secrets, and each of `secrets` wherever it appears, as `mask`."""
    if isinstance(value, dict):
        return {k: mask if SECRET_NAME.search(str(k)) and v is not None else hidden(v, secrets, mask) for k, v in value.items()}
    if isinstance(value, list):
        return [hidden(v, secrets, mask) for v in value]
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, mask)
    return value


def _secrets(value: Any) -> list[str]:
    if isinstance(value, dict):
        found = [v for k, v in value.items() if SECRET_NAME.search(str(k)) and isinstance(v, str) and len(v) >= MIN_SECRET_CHARS]
        return found + [s for v in value.values() for s in _secrets(v)]
    if isinstance(value, list):
        return [s for v in value for s in _secrets(v)]
    return []
