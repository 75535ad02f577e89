"""The sandbox prompt templates render in: Jinja2's ImmutableSandboxedEnvironment (no attribute
that starts with '_', no method that changes a list or dict, no Python builtin the template was
not given), StrictUndefined (a missing name or field is an error, never an empty string) and
autoescape off (a prompt is text, not HTML). Nothing is ever passed to eval.

The sandbox keeps a template away from Python's internals but not from the server's memory
(`{{ 'x' * 10**10 }}`), so this one adds the bounds it lacks, checked before the work is done:

- `*`, `**`, `+`, `%` and `~` refuse a string or list over MAX_VALUE_CHARS and a number over
  MAX_INT_BITS bits;
- a call (a string method, a filter, range, a macro) refuses a number argument over
  MAX_VALUE_CHARS, a filter or string method whose inputs weigh more than MAX_WORK (all of them
  together, or the two largest multiplied, as `t.replace('', t)` would cost), and a result
  over MAX_VALUE_CHARS; a lazy sequence (map, select) reaching a filter is read within MAX_WORK;
- a format string (`%`, str.format, the format filter) refuses a width or precision over
  MAX_VALUE_CHARS and widths given as arguments (`*`, nested fields);
- what `{{ }}` prints weighs at most MAX_WORK before it is turned into text.

templates.py adds the bound on the whole rendered text and the time budget. There is no loader:
{% include %}, {% import %} and {% extends %} have nothing to load (templates.py refuses them)."""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg

from forge_mcp.prompts.limits import MAX_INT_BITS, MAX_VALUE_CHARS, MAX_WORK

# Globals a prompt has no use for: lipsum writes random paragraphs by the thousand.
DROPPED_GLOBALS = ("lipsum",)
_SIZED = (str, bytes, list, tuple, dict, set, frozenset, range)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")
_FORMAT_FLAG = "forge_format"  # on a wrapped str.format: its numbers are values, not sizes


class RenderLimit(SecurityError):
    """A template went past one of the bounds above."""


def length(value: Any) -> int:
    """Characters of a string, items of a collection; 0 for anything else."""
    return len(value) if isinstance(value, _SIZED) else 0


def weight(value: Any) -> int:
    """Its length, plus the characters of the strings directly inside a collection."""
    if isinstance(value, str | bytes | range):
        return len(value)
    if isinstance(value, dict):
        value = value.values()
    elif not isinstance(value, list | tuple | set | frozenset):
        return 0
    return len(value) + sum(len(item) for item in value if isinstance(item, str | bytes))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_result(value: Any) -> Any:
    if _is_int(value) and value.bit_length() > MAX_INT_BITS:
        raise RenderLimit(f"a number of {value.bit_length():,} bits is over the limit of {MAX_INT_BITS:,}")
    if length(value) > MAX_VALUE_CHARS:
        raise RenderLimit(f"a value of {length(value):,} characters or items is over the limit of {MAX_VALUE_CHARS:,}")
    return value


def _check_numbers(values: Iterable[Any]) -> None:
    for value in values:
        if _is_int(value) and abs(value) > MAX_VALUE_CHARS:
            raise RenderLimit(f"the argument {value} is over the limit of {MAX_VALUE_CHARS:,} for a size or count")


def _check_work(values: Iterable[Any]) -> None:
    """For an operation that may multiply its inputs (replace, join, indent…): all of them
    together, and the two largest multiplied, within MAX_WORK."""
    weights = sorted((weight(value) for value in values), reverse=True)
    work = max(sum(weights), weights[0] * weights[1] if len(weights) > 1 else 0)
    if work > MAX_WORK:
        raise RenderLimit(f"this call would work through about {work:,} characters; the limit is {MAX_WORK:,}")


def _check_format(text: str, style: str, arguments: Iterable[Any]) -> None:
    """A format string (style '%' or '{}'): no width or precision over MAX_VALUE_CHARS, none given
    as an argument, and its fields times the largest argument within MAX_WORK."""
    if style == "%":
        fields = [(match.group(1), match.group(2)) for match in _PERCENT_SPEC.finditer(text)]
        numbers = [number for field in fields for number in field if number is not None]
    else:
        try:
            parsed = [spec for _, name, spec, _ in string.Formatter().parse(text) if name is not None]
        except ValueError:
            return  # format() itself says what is wrong with it
        if any("{" in (spec or "") for spec in parsed):
            raise RenderLimit("a format spec takes no nested {field}; write the width in the format")
        fields = [(spec, None) for spec in parsed]
        numbers = [number for spec in parsed for number in _NUMBER.findall(spec or "")]
    if "*" in numbers:
        raise RenderLimit("a '%' format takes no '*' width or precision; write the number in the format")
    for number in numbers:
        if int(number) > MAX_VALUE_CHARS:
            raise RenderLimit(f"a format width of {number} is over the limit of {MAX_VALUE_CHARS:,}")
    largest = max((weight(value) for value in _flat(arguments)), default=0)
    if len(text) + len(fields) * largest > MAX_WORK:
        raise RenderLimit(f"{len(fields):,} format fields of up to {largest:,} characters each are over the limit "
                          f"of {MAX_WORK:,}")  # fmt: skip


def _flat(arguments: Iterable[Any]) -> Iterator[Any]:
    """The values a format may print: the arguments, and the items of a tuple or dict given as one."""
    for value in arguments:
        if isinstance(value, tuple):
            yield from value
        elif isinstance(value, dict):
            yield from value.values()
        else:
            yield value


def _read_bounded(items: Iterator[Any]) -> list[Any]:
    """A lazy sequence (map, select…) read into a list, within MAX_WORK."""
    read: list[Any] = []
    total = 0
    for item in items:
        total += 1 + weight(item)
        if total > MAX_WORK:
            raise RenderLimit(f"a sequence of over {MAX_WORK:,} characters or items reached a filter")
        read.append(item)
    return read


def _guarded_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn` with the call bounds; Jinja's pass_context/pass_environment marker is kept (wraps)."""
    skip = 0 if _PassArg.from_obj(fn) is None else 1  # the context or environment comes first

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip and isinstance(args[skip], Iterator):
            args = (*args[:skip], _read_bounded(args[skip]), *args[skip + 1 :])
        value, params = (args[skip], args[skip + 1 :]) if len(args) > skip else (None, ())
        if name == "format" and isinstance(value, str):
            _check_format(value, "%", (*params, *kwargs.values()))
        else:
            _check_numbers((*params, *kwargs.values()))
            _check_work((value, *params, *kwargs.values()))
        return check_result(fn(*args, **kwargs))

    return guarded


class _BoundedConcat(CodeGenerator):
    """`a ~ b` goes through PromptSandbox.concat, which checks the size first."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat((")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")


class PromptSandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _BoundedConcat

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                         finalize=_printable, auto_reload=False)  # fmt: skip
        self.filters = {name: _guarded_filter(name, fn) for name, fn in self.filters.items()}
        for name in DROPPED_GLOBALS:
            self.globals.pop(name, None)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _is_int(left) and _is_int(right):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise RenderLimit(f"a product over {MAX_INT_BITS:,} bits is over the limit")
        elif operator == "*" and (_is_int(left) or _is_int(right)):
            count, sized = (left, right) if _is_int(left) else (right, left)
            if length(sized) * count > MAX_VALUE_CHARS or weight(sized) * count > MAX_WORK:
                raise RenderLimit(f"repeating {weight(sized):,} characters or items {count:,} times is over the limit "
                                  f"of {MAX_VALUE_CHARS:,}")  # fmt: skip
        elif operator == "**" and _is_int(left) and _is_int(right) and right > 0:
            if max(left.bit_length(), 1) * right > MAX_INT_BITS:
                raise RenderLimit(f"{left} ** {right} is over the limit of {MAX_INT_BITS:,} bits")
        elif operator == "+" and length(left) + length(right) > MAX_VALUE_CHARS:
            raise RenderLimit(f"joining {length(left) + length(right):,} characters or items is over the limit of "
                              f"{MAX_VALUE_CHARS:,}")  # fmt: skip
        elif operator == "%" and isinstance(left, str):
            _check_format(left, "%", (right,))
        return check_result(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if not getattr(obj, _FORMAT_FLAG, False):
            _check_numbers((*args, *kwargs.values()))
        receiver = getattr(obj, "__self__", None)
        if isinstance(receiver, str | bytes):  # a string method: 'a'.replace(…), ', '.join(…)
            _check_work((receiver, *args, *kwargs.values()))
        return check_result(super().call(context, obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(value.__self__, "{}", (*args, *kwargs.values()))
            return check_result(wrapped(*args, **kwargs))  # type: ignore[no-any-return]

        setattr(checked, _FORMAT_FLAG, True)
        return checked

    def concat(self, parts: tuple[Any, ...]) -> str:
        """`a ~ b ~ …`: what is joined weighs at most MAX_WORK before it becomes text."""
        total = sum(weight(part) for part in parts)
        if total > MAX_WORK:
            raise RenderLimit(f"joining about {total:,} characters with '~' is over the limit of {MAX_WORK:,}")
        return check_result("".join(map(str, parts)))  # type: ignore[no-any-return]


def _printable(value: Any) -> Any:
    """What `{{ }}` prints, before it becomes text."""
    if weight(value) > MAX_WORK:
        raise RenderLimit(
            f"printing a value of {weight(value):,} characters or items is over the limit of {MAX_WORK:,}"
        )
    return value
