"""One prompt template: parsed when it is saved (its variables, or the line that does not parse)
and rendered in the sandbox with the variables given, within MAX_OUTPUT_CHARS of text and
RENDER_SECONDS of time. Both are CPU work: the service runs them in a worker thread. Jinja2 is
imported at the first use, not when the server starts.

The time budget is kept by a trace function on the rendering thread alone: on every line the
template's compiled code runs (a loop's turn included) it checks the clock, and past the
budget it stops the render with an error. The event loop's thread is never traced."""

from __future__ import annotations

import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from forge_mcp.errors import InvalidArguments
from forge_mcp.prompts.limits import MAX_OUTPUT_CHARS, MAX_VARIABLES, RENDER_SECONDS

if TYPE_CHECKING:
    from jinja2 import Template, nodes

    from forge_mcp.prompts.sandbox import PromptSandbox

TEMPLATE_FILE = "<template>"  # the file name Jinja gives code compiled from a string
# jinja2.nodes class -> the tag: a prompt has nothing to load another template from
REFUSED_TAGS = {"Extends": "extends", "Include": "include", "Import": "import", "FromImport": "from … import"}
MAX_ERROR_CHARS = 300
COMPILED_KEPT = 32  # compiled templates kept: compiling costs more than rendering
# What a template may get wrong while it renders, besides Jinja's own errors; anything else is a bug of ours.
RENDER_ERRORS = (TypeError, ValueError, ArithmeticError, LookupError, RecursionError, AttributeError)


@dataclass(frozen=True)
class TemplateVariables:
    names: list[str]  # every variable it uses, in the order they first appear
    # Those it can do without: each use is `x|default(…)`, `x is defined`, or inside {% if x is defined %}.
    optional: list[str]


class RenderTimeout(BaseException):
    """Raised inside the rendering thread when the time budget is spent: a BaseException, so that
    no `except Exception` on the way out can swallow it (tracing ends once it is raised)."""


class TemplateEngine:
    def __init__(self, *, render_seconds: float = RENDER_SECONDS, max_output_chars: int = MAX_OUTPUT_CHARS) -> None:
        self._sandbox_made: PromptSandbox | None = None
        self._render_seconds = render_seconds
        self._max_output = max_output_chars
        self._compiled: OrderedDict[str, Template] = OrderedDict()  # template text -> compiled, newest last
        self._lock = threading.Lock()  # renders run in worker threads

    def variables(self, template: str) -> TemplateVariables:
        """The names a template expects, in the order they first appear, and which of them it can
        do without. A template that does not parse, or that includes, imports or extends another,
        is refused naming the line."""
        from jinja2 import TemplateSyntaxError, meta, nodes

        try:
            tree = self._sandbox.parse(template)
        except TemplateSyntaxError as exc:
            raise InvalidArguments(f"template: line {exc.lineno}: {_short(exc.message or str(exc))}; it is Jinja2 "
                                   "syntax: {{ name }} for a variable, {% if %}/{% for %} … {% endif %}/{% endfor %}") from None  # fmt: skip
        for kind, tag in REFUSED_TAGS.items():
            found = next(tree.find_all(getattr(nodes, kind)), None)
            if found is not None:
                raise InvalidArguments(f"template: line {found.lineno}: {{% {tag} %}} is not supported; a prompt is one "
                                       "template: put the text in it, or a macro defined in it")  # fmt: skip
        undeclared = meta.find_undeclared_variables(tree) - set(self._sandbox.globals)
        uses = [n for n in tree.find_all(nodes.Name) if n.name in undeclared]
        ordered = list(dict.fromkeys(n.name for n in uses))
        if len(ordered) > MAX_VARIABLES:
            raise InvalidArguments(f"template: {len(ordered)} variables is over the limit of {MAX_VARIABLES}")
        guarded = _guarded_uses(tree)
        needed = {n.name for n in uses if id(n) not in guarded}
        return TemplateVariables(ordered, [name for name in ordered if name not in needed])

    def render(self, template: str, values: dict[str, Any], *, what: str) -> str:
        """The text; every error the template can cause is an InvalidArguments naming `what`
        (name@vN) and the template's line. Blocks up to the time budget: call it in a thread."""
        from jinja2 import TemplateError, UndefinedError
        from jinja2.sandbox import SecurityError

        try:
            compiled = self._compile(template)
        except TemplateError as exc:
            raise InvalidArguments(f"{what}: the template does not compile: {_short(str(exc))}") from None
        previous = sys.gettrace()
        sys.settrace(_deadline_tracer(time.monotonic() + self._render_seconds))
        try:
            parts: list[str] = []
            size = 0
            for part in compiled.generate(values):
                size += len(part)
                if size > self._max_output:
                    raise InvalidArguments(f"{what}: the rendered text is over the limit of {self._max_output:,} "
                                           "characters; give shorter values, or loop over fewer items")  # fmt: skip
                parts.append(part)
        except RenderTimeout:
            raise InvalidArguments(f"{what}: rendering took over {self._render_seconds:g} s and was stopped; a loop in "
                                   "the template runs too long") from None  # fmt: skip
        except SecurityError as exc:
            raise InvalidArguments(
                f"{what}: {_where(exc.__traceback__)}the sandbox refused it: {_short(str(exc))}"
            ) from None
        except UndefinedError as exc:
            raise InvalidArguments(f"{what}: {_where(exc.__traceback__)}{_short(str(exc))}; check the names the "
                                   "template uses and the shape of the variables you gave") from None  # fmt: skip
        except (TemplateError, *RENDER_ERRORS) as exc:
            raise InvalidArguments(f"{what}: {_where(exc.__traceback__)}rendering failed: {type(exc).__name__}: "
                                   f"{_short(str(exc))}") from None  # fmt: skip
        finally:
            sys.settrace(previous)
        return "".join(parts)

    @property
    def _sandbox(self) -> PromptSandbox:
        with self._lock:
            if self._sandbox_made is None:
                from forge_mcp.prompts.sandbox import PromptSandbox

                self._sandbox_made = PromptSandbox()
            return self._sandbox_made

    def _compile(self, template: str) -> Template:
        with self._lock:
            compiled = self._compiled.get(template)
            if compiled is not None:
                self._compiled.move_to_end(template)
                return compiled
        compiled = self._sandbox.from_string(template)
        with self._lock:
            self._compiled[template] = compiled
            while len(self._compiled) > COMPILED_KEPT:
                self._compiled.popitem(last=False)
        return compiled


def _guarded_uses(tree: nodes.Template) -> set[int]:
    """The ids of the Name nodes used where an undefined value is fine: `x|default(…)`,
    `x is defined`, and anywhere in the body of {% if x is defined %} (or `… and x is defined`)."""
    from jinja2 import nodes

    guarded = {id(f.node) for f in tree.find_all(nodes.Filter) if f.name in ("default", "d")}
    guarded |= {id(t.node) for t in tree.find_all(nodes.Test) if t.name in ("defined", "undefined")}
    for branch in tree.find_all(nodes.If):
        names = _defined_in(branch.test)
        guarded |= {id(n) for part in branch.body for n in part.find_all(nodes.Name) if n.name in names}
    return guarded


def _defined_in(test: nodes.Expr) -> set[str]:
    """The names a condition proves defined: `x is defined`, and each side of an `and`."""
    from jinja2 import nodes

    if isinstance(test, nodes.Test) and test.name == "defined" and isinstance(test.node, nodes.Name):
        return {test.node.name}
    if isinstance(test, nodes.And):
        return _defined_in(test.left) | _defined_in(test.right)
    return set()


def _deadline_tracer(deadline: float) -> Callable[[FrameType, str, Any], Any]:
    """A trace function that checks the clock on each call, and on each line of template code."""

    def on_line(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderTimeout
        return on_line

    def on_call(frame: FrameType, event: str, arg: Any) -> Any:
        if time.monotonic() > deadline:
            raise RenderTimeout
        return on_line if frame.f_code.co_filename == TEMPLATE_FILE else None

    return on_call


def _where(traceback: TracebackType | None) -> str:
    """'line N: ' for the template's innermost line in a traceback (Jinja rewrites its frames to
    the template's own lines), or nothing."""
    line = None
    while traceback is not None:
        if traceback.tb_frame.f_code.co_filename == TEMPLATE_FILE:
            line = traceback.tb_lineno
        traceback = traceback.tb_next
    return f"line {line}: " if line is not None else ""


def _short(text: str) -> str:
    text = " ".join(text.split()).rstrip(".")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"
