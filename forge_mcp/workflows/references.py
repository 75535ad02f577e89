"""References between steps: `${inputs.x}` and `${step.field.sub[0]}`.

A string that is exactly one reference becomes the referenced value with its own type (a
number stays a number); a reference inside longer text is written into it (a string as is,
anything else as JSON). The head of a path is `inputs` or a step's name; the rest walks the
value: `.name` into a mapping, `[n]` into a list."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from forge_mcp.errors import InvalidArguments

INPUTS = "inputs"
PATH_TEXT = r"[a-z][a-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\])*"
REFERENCE = re.compile(r"\$\{\s*(" + PATH_TEXT + r")\s*\}")
PATH = re.compile(PATH_TEXT)
_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")
_OPEN = re.compile(r"\$\{")


class Unresolved(Exception):
    """A reference that names nothing in the values at hand (a skipped step's, a missing field)."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"${{{path.text}}}: {why}")
        self.path = path


@dataclass(frozen=True)
class Path:
    text: str
    head: str  # "inputs" or a step's name
    parts: tuple[str | int, ...]  # field names and list indexes after the head

    @classmethod
    def parse(cls, text: str) -> Path:
        text = text.strip()
        if not PATH.fullmatch(text):
            raise InvalidArguments(f"${{{text}}}: a reference is inputs.<name> or <step>.<field>, then .field or [index]")
        head = re.match(r"[a-z][a-z0-9_]*", text)
        assert head is not None
        parts: list[str | int] = []
        for match in _PART.finditer(text, head.end()):
            parts.append(match[1] if match[1] is not None else int(match[2]))
        return cls(text, head[0], tuple(parts))

    def lookup(self, scope: Mapping[str, Any]) -> Any:
        """The value at this path in {"inputs": {...}, step: result, ...}."""
        if self.head not in scope:
            raise Unresolved(self, f"{self.head} has no value (the step was skipped, failed or has not run)")
        value = scope[self.head]
        walked = self.head
        for part in self.parts:
            if isinstance(part, int):
                if not isinstance(value, list) or part >= len(value):
                    raise Unresolved(self, f"{walked} has no item [{part}]")
                value = value[part]
                walked += f"[{part}]"
            else:
                if not isinstance(value, Mapping) or part not in value:
                    raise Unresolved(self, f"{walked} has no field {part!r}")
                value = value[part]
                walked += f".{part}"
        return value


def paths_in(value: Any) -> Iterator[tuple[str, Path]]:
    """Every reference inside an argument value: (where, path), `where` as a dotted location."""
    yield from _walk(value, "")


def _walk(value: Any, where: str) -> Iterator[tuple[str, Path]]:
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            yield where, Path.parse(match[1])
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _walk(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{where}[{i}]")


def malformed(value: Any) -> Iterator[str]:
    """Each '${' that does not open a well-formed reference, as the text that follows it."""
    if isinstance(value, str):
        well_formed = {m.start() for m in REFERENCE.finditer(value)}
        for match in _OPEN.finditer(value):
            if match.start() not in well_formed:
                yield value[match.start(): match.start() + 40]
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from malformed(item)
    elif isinstance(value, list):
        for item in value:
            yield from malformed(item)


def whole_reference(value: Any) -> Path | None:
    """The path when `value` is a string that is exactly one reference (it resolves to a typed value)."""
    if isinstance(value, str):
        match = REFERENCE.fullmatch(value.strip())
        if match:
            return Path.parse(match[1])
    return None


def resolve(value: Any, scope: Mapping[str, Any]) -> Any:
    """`value` with every reference replaced from `scope`; raises Unresolved."""
    if isinstance(value, str):
        whole = whole_reference(value)
        if whole is not None:
            return whole.lookup(scope)
        return REFERENCE.sub(lambda m: _as_text(Path.parse(m[1]).lookup(scope)), value)
    if isinstance(value, Mapping):
        return {key: resolve(item, scope) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, scope) for item in value]
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
