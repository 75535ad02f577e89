"""A step's `when`: a small grammar, parsed here and evaluated over values, never `eval`.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=") operand)?
    operand    := number | 'text' | "text" | true | false | null | reference | "(" condition ")"
    reference  := ${inputs.x} | ${step.field[0]} | the same path without ${ }

    when: "${evaluate.metrics.exact_match} > ${baseline.metrics.exact_match} and inputs.promote"

Numbers compare with numbers, text with text; == and != compare anything. A condition is
true or false: a lone operand must be a boolean. A reference to a step that did not run
(skipped, failed) is null."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from forge_mcp.errors import InvalidArguments
from forge_mcp.workflows.references import PATH_TEXT, Path, Unresolved

_TOKEN = re.compile(
    r"\s*(?:(?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"
    r"|(?P<text>'[^']*'|\"[^\"]*\")"
    r"|\$\{\s*(?P<reference>" + PATH_TEXT + r")\s*\}"
    r"|(?P<op>==|!=|<=|>=|<|>|\(|\))"
    r"|(?P<word>" + PATH_TEXT + r"))"
)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"==": operator.eq, "!=": operator.ne, "<": operator.lt,
                                                    "<=": operator.le, ">": operator.gt, ">=": operator.ge}  # fmt: skip
_LITERALS = {"true": True, "false": False, "null": None}
MAX_CONDITION_CHARS = 2000


class ConditionError(Exception):
    """A condition that cannot be decided over the values at hand (a type mismatch, say)."""


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Reference:
    path: Path


@dataclass(frozen=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Logic:
    op: str  # "and" | "or"
    parts: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    part: Node


Node = Literal | Reference | Compare | Logic | Not


@dataclass(frozen=True)
class Condition:
    text: str
    root: Node

    @classmethod
    def parse(cls, text: str) -> Condition:
        if len(text) > MAX_CONDITION_CHARS:
            raise InvalidArguments(f"longer than {MAX_CONDITION_CHARS} characters")
        parser = _Parser(_tokens(text))
        root = parser.condition()
        if parser.peek() is not None:
            raise InvalidArguments(f"unexpected {parser.peek()[1]!r} after a complete condition")  # type: ignore[index]
        return cls(text, root)

    def references(self) -> list[Path]:
        return list(_references(self.root))

    def evaluate(self, scope: Mapping[str, Any]) -> bool:
        value = _evaluate(self.root, scope)
        if not isinstance(value, bool):
            raise ConditionError(f"the condition is {value!r}, not true or false; compare it with something")
        return value


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise InvalidArguments(f"cannot read {text[position:].strip()[:30]!r}: use comparisons (== != < <= > >=), "
                                   "and, or, not, parentheses, numbers, 'text', true, false, null and references")  # fmt: skip
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        value = match[kind]
        if kind == "number":
            out.append(("literal", float(value) if any(c in value for c in ".eE") else int(value)))
        elif kind == "text":
            out.append(("literal", value[1:-1]))
        elif kind == "reference":
            out.append(("reference", Path.parse(value)))
        elif kind == "word" and value in ("and", "or", "not"):
            out.append(("keyword", value))
        elif kind == "word" and value in _LITERALS:
            out.append(("literal", _LITERALS[value]))
        elif kind == "word":
            out.append(("reference", Path.parse(value)))
        else:
            out.append(("op", value))
    if not out:
        raise InvalidArguments("the condition is empty")
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self._tokens = tokens
        self._at = 0

    def peek(self) -> tuple[str, Any] | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise InvalidArguments("the condition ends too early")
        self._at += 1
        return token

    def _is(self, kind: str, value: Any) -> bool:
        token = self.peek()
        return token is not None and token[0] == kind and token[1] == value

    def condition(self) -> Node:
        return self._logic("or", self._and)

    def _and(self) -> Node:
        return self._logic("and", self._not)

    def _logic(self, word: str, part: Callable[[], Node]) -> Node:
        parts = [part()]
        while self._is("keyword", word):
            self._take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else Logic(word, tuple(parts))

    def _not(self) -> Node:
        if self._is("keyword", "not"):
            self._take()
            return Not(self._not())
        return self._comparison()

    def _comparison(self) -> Node:
        left = self._operand()
        token = self.peek()
        if token is not None and token[0] == "op" and token[1] in _COMPARE:
            self._take()
            return Compare(token[1], left, self._operand())
        return left

    def _operand(self) -> Node:
        kind, value = self._take()
        if kind == "literal":
            return Literal(value)
        if kind == "reference":
            return Reference(value)
        if kind == "op" and value == "(":
            inner = self.condition()
            if not self._is("op", ")"):
                raise InvalidArguments("a '(' is not closed")
            self._take()
            return inner
        raise InvalidArguments(f"expected a value or a reference, found {value!r}")


def _references(node: Node) -> Iterator[Path]:
    if isinstance(node, Reference):
        yield node.path
    elif isinstance(node, Compare):
        yield from _references(node.left)
        yield from _references(node.right)
    elif isinstance(node, Logic):
        for part in node.parts:
            yield from _references(part)
    elif isinstance(node, Not):
        yield from _references(node.part)


def _evaluate(node: Node, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Reference):
        try:
            return node.path.lookup(scope)
        except Unresolved:
            return None
    if isinstance(node, Not):
        return not _truth(_evaluate(node.part, scope))
    if isinstance(node, Logic):
        if node.op == "and":
            return all(_truth(_evaluate(part, scope)) for part in node.parts)
        return any(_truth(_evaluate(part, scope)) for part in node.parts)
    left, right = _evaluate(node.left, scope), _evaluate(node.right, scope)
    if node.op in ("==", "!="):
        return _COMPARE[node.op](left, right)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not all(isinstance(v, str) for v in (left, right)):
        raise ConditionError(f"{node.op} compares numbers with numbers or text with text, not {_kind(left)} with {_kind(right)}")
    return _COMPARE[node.op](left, right)


def _truth(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConditionError(f"and, or and not take true or false, not {_kind(value)} {value!r}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "text"}.get(type(value), type(value).__name__)
