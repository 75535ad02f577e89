"""How deep a JSON document nests, found without parsing it.

Python's and pydantic's JSON parsers recurse: a document nested a few hundred levels
deep ends in a RecursionError or a parser limit, each surfacing differently. Every
surface (HTTP for MCP and A2A, MCP stdio, `forge-mcp call --args`) checks the raw text
against one limit first and answers a clear invalid-request error.

The scan is linear and never recurses: string literals are masked out (a bracket inside
a string does not nest), then the running count of open brackets is taken with numpy.
A document with no more brackets than the limit is passed at once.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64
"""Arrays and objects inside each other, the outermost counting as 1. A JSON-RPC call
uses 3 (message, params, arguments), which leaves tool arguments 61 levels."""

_QUOTE, _BACKSLASH = 0x22, 0x5C


def too_deep_message(limit: int = MAX_JSON_DEPTH) -> str:
    return f"the JSON is nested more than {limit} levels deep (arrays and objects inside each other); flatten it"


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data


def _depths(data: bytes) -> tuple[Any, Any]:
    """(the bytes as a numpy array, the nesting depth after each byte), strings masked out."""
    import numpy as np

    raw = np.frombuffer(data, dtype=np.uint8)
    quote = raw == _QUOTE
    if b"\\" in data:
        # A quote is escaped when an odd run of backslashes stands right before it.
        backslash = raw == _BACKSLASH
        candidates = np.flatnonzero(quote[1:] & backslash[:-1]) + 1
        if candidates.size:
            index = np.arange(raw.size, dtype=np.int32)
            index[backslash] = -1
            last_plain = np.maximum.accumulate(index)
            run = (candidates - 1) - last_plain[candidates - 1]
            quote[candidates[run % 2 == 1]] = False
    # Inside a string: an odd number of quotes so far (a uint8 count wraps, keeping parity).
    in_string = (np.cumsum(quote, dtype=np.uint8) & 1).view(bool) | quote
    step = _STEP[raw]
    step[in_string] = 0
    return raw, np.cumsum(step, dtype=np.int32)


def _step_table() -> Any:
    import numpy as np

    table = np.zeros(256, dtype=np.int8)
    table[[0x5B, 0x7B]] = 1  # [ {
    table[[0x5D, 0x7D]] = -1  # ] }
    return table


class _LazyStep:
    """The byte -> depth change table, built on first use (numpy loads only when needed)."""

    table: Any = None

    def __getitem__(self, raw: Any) -> Any:
        if _LazyStep.table is None:
            _LazyStep.table = _step_table()
        return _LazyStep.table[raw]


_STEP = _LazyStep()


def exceeds_depth(data: bytes | str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text nests deeper than `limit` (malformed text is judged as written)."""
    raw = _as_bytes(data)
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    return bool(_depths(raw)[1].max() > limit)


def shallow_parse(data: bytes | str, keep: int = 2) -> Any:
    """The document with every container below level `keep` emptied, parsed; None when
    that does not parse. Enough to read a too-deep JSON-RPC request's id and method."""
    raw = _as_bytes(data)
    if not raw:
        return None
    import numpy as np

    array, after = _depths(raw)
    before = np.empty_like(after)
    before[0] = 0
    before[1:] = after[:-1]
    kept = array[np.minimum(before, after) <= keep]
    try:
        return json.loads(kept.tobytes())
    except (ValueError, RecursionError):
        return None


def request_id(data: bytes | str) -> str | int | None:
    """The id of a JSON-RPC request too deep to parse, when it can be read."""
    message = shallow_parse(data)
    value = message.get("id") if isinstance(message, dict) else None
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None
