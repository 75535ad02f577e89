"""What the person sees in `forge-mcp chat`, and how their lines are read.

On a terminal (stdin and stdout both a TTY): colours, the model's text as it streams, one
line per tool call and per result, a job's progress as a bar redrawn in place (\\r) and
cleared when its tool ends. Anywhere else (a pipe, a file, a test): the same lines without
colours or bars, progress as an occasional plain line, and each line read echoed after its
prompt, so a transcript reads like the conversation it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from forge_mcp.agents.operator_tools import OperatorTool, ToolOutcome, call_text

PROMPT = "you> "
BAR_CELLS = 24
ARGUMENTS_CHARS = 160  # a call's arguments as shown; the model got them whole
RESULT_CHARS = 160
# Without a bar, progress shows as a plain line at most at each quarter of the way.
PLAIN_PROGRESS_STEPS = 4
QUESTION_SUFFIX = re.compile(r"\s*\(yes/no\)\s*$")
SENTENCE_END = re.compile(r"(?<![ (]e\.g\.)(?<![ (]i\.e\.)(?<=[.!?])\s")  # not after e.g. or i.e.

RESET, BOLD, DIM = "\x1b[0m", "\x1b[1m", "\x1b[2m"
RED, GREEN, YELLOW, CYAN = "\x1b[31m", "\x1b[32m", "\x1b[33m", "\x1b[36m"
CLEAR_LINE = "\r\x1b[K"
# Fields that name what a result is about, in the order a summary prefers them.
SUBJECT_KEYS = ("id", "job_id", "name", "model", "service")
STATE_KEYS = ("state", "stage", "status")
COUNT_KEYS = ("rows", "rows_read", "count", "total")


class Terminal:
    def __init__(self, out: TextIO, *, interactive: bool, colour: bool) -> None:
        self.out = out
        self.interactive = interactive
        self.colour = colour
        self._at_line_start = True
        self._bar = False  # a progress bar is on the current line
        self._plain_progress: dict[str, int] = {}  # call_id -> the quarter last shown
        self._reading = PROMPT  # the prompt of the line being read

    @classmethod
    def for_process(cls) -> Terminal:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        # NO_COLOR (no-color.org) and TERM=dumb keep a terminal plain.
        colour = interactive and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        if interactive:
            with contextlib.suppress(ImportError):
                import readline  # noqa: F401 (input() then edits lines and keeps their history)
        return cls(sys.stdout, interactive=interactive, colour=colour)

    # writing --------------------------------------------------------------------------------

    def _paint(self, text: str, *styles: str) -> str:
        return f"{''.join(styles)}{text}{RESET}" if self.colour and styles else text

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _line(self, text: str) -> None:
        """A whole line of its own: after the text in progress, never inside it."""
        self.clear_bar()
        self.end_text()
        self._write(text + "\n")

    def text(self, delta: str) -> None:
        """The model's words as they stream."""
        if not delta:
            return
        self.clear_bar()
        self._write(delta)
        self._at_line_start = delta.endswith("\n")

    def end_text(self) -> None:
        if not self._at_line_start:
            self._write("\n")
            self._at_line_start = True

    def info(self, text: str) -> None:
        self._line(self._paint(text, DIM))

    def warning(self, text: str) -> None:
        self._line(self._paint(f"warning: {text}", YELLOW))

    def error(self, text: str) -> None:
        self._line(self._paint(f"✗ {text}", RED))

    # tools ----------------------------------------------------------------------------------

    def tool_started(self, name: str, arguments: Mapping[str, Any]) -> None:
        self._line(self._paint(f"→ {call_text(name, arguments, ARGUMENTS_CHARS)}", CYAN))

    def tool_progress(self, call_id: str, name: str, done: float, total: float | None, message: str | None) -> None:
        if self.interactive:
            self._draw_bar(name, done, total, message)
            return
        # At each quarter of the way, or (no total) once: what a reader of the transcript needs.
        mark = int(min(max(done / total, 0.0), 1.0) * PLAIN_PROGRESS_STEPS) if total else -1
        if self._plain_progress.get(call_id) == mark:
            return
        self._plain_progress[call_id] = mark
        self._line(f"  … {name}: {progress_text(done, total, message)}")

    def _draw_bar(self, name: str, done: float, total: float | None, message: str | None) -> None:
        self.end_text()
        width = shutil.get_terminal_size((80, 24)).columns
        if total:
            share = min(max(done / total, 0.0), 1.0)
            filled = round(share * BAR_CELLS)
            bar = "[" + "#" * filled + "-" * (BAR_CELLS - filled) + "] "
        else:
            bar = ""
        line = f"  {name} {bar}{progress_text(done, total, message)}"
        self._write(CLEAR_LINE + self._paint(line[: max(width - 1, 10)], YELLOW))
        self._bar = True

    def clear_bar(self) -> None:
        if self._bar:
            self._write(CLEAR_LINE)
            self._bar = False

    def tool_finished(self, call_id: str, name: str, outcome: ToolOutcome) -> None:
        self._plain_progress.pop(call_id, None)
        if outcome.is_error:
            self._line(self._paint(f"✗ {name}: {first_line(outcome.text, RESULT_CHARS)}", RED))
            return
        summary = summarize(outcome.data) if outcome.data is not None else first_line(outcome.text, RESULT_CHARS)
        if outcome.images:
            summary += f" [{len(outcome.images)} image{'s' if len(outcome.images) > 1 else ''}, not shown here]"
        self._line(self._paint(f"✓ {name}: {summary}" if summary else f"✓ {name}", GREEN))

    def tool_list(self, tools: Sequence[OperatorTool]) -> None:
        width = max((len(t.name) for t in tools), default=0)
        for tool in tools:
            marker = "asks first" if tool.destructive else ("read-only" if tool.read_only else "")
            line = f"  {tool.name:<{width}}  {marker:<10}  {first_sentence(tool.description)}"
            self._line(self._paint(line, YELLOW) if tool.destructive else line)
        self.info(f"{len(tools)} tools; those that ask first change or remove something")

    # input ----------------------------------------------------------------------------------

    def interrupted_at_prompt(self) -> None:
        """Ctrl-C while nobody's turn runs: the read goes on, after a word on how to leave."""
        self._write("\n" + self._paint("(to leave: /quit or Ctrl-D)", DIM) + "\n")
        if self.interactive:
            self._write(self._reading.replace("\001", "").replace("\002", ""))  # the typed line was dropped: ask again

    def prompt_text(self) -> str:
        return self._prompt(PROMPT, BOLD)

    def question_text(self, question: str) -> str:
        return self._prompt(QUESTION_SUFFIX.sub("", question) + " [y/N] ", YELLOW, BOLD)

    def _prompt(self, text: str, *styles: str) -> str:
        """A prompt for input(): readline counts the prompt's width to redraw the line, and must
        be told which characters take no room (\\001 … \\002 around each escape sequence)."""
        if not (self.colour and styles):
            return text
        return f"\001{''.join(styles)}\002{text}\001{RESET}\002"

    async def read_line(self, prompt: str) -> str | None:
        """The person's next line (None at end of input). Read in a thread of its own, so the MCP
        session and a Ctrl-C keep being served while nobody types; a daemon thread, so a read
        left waiting never holds the program at exit."""
        self.clear_bar()
        self.end_text()
        self._reading = prompt
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[str | None] = loop.create_future()

        def settle(value: str | None, error: BaseException | None) -> None:
            if answer.done():
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(value)

        def read() -> None:
            value: str | None = None
            error: BaseException | None = None
            try:
                value = self._read_blocking(prompt)
            except EOFError:
                value = None
            except BaseException as exc:  # noqa: BLE001 (handed to the waiting coroutine)
                error = exc
            try:
                loop.call_soon_threadsafe(settle, value, error)
            except RuntimeError:
                pass  # the loop has closed: nobody waits for this line any more

        threading.Thread(target=read, name="chat-input", daemon=True).start()
        return await answer

    def _read_blocking(self, prompt: str) -> str:
        if self.interactive:
            return input(prompt)  # line editing and history from readline, when loaded
        self._write(prompt)
        line = sys.stdin.readline()
        if not line:
            self._write("\n")
            raise EOFError
        self._write(line if line.endswith("\n") else line + "\n")  # the transcript shows what was said
        return line.rstrip("\n")


# text helpers ----------------------------------------------------------------------------------


def progress_text(done: float, total: float | None, message: str | None) -> str:
    share = f"{done:g}/{total:g}" if total else f"{done:g}"
    if total:
        share += f" ({min(max(done / total, 0.0), 1.0):.0%})"
    return f"{share} {message}" if message else share


def first_line(text: str, limit: int) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "")
    return line if len(line) <= limit else line[: limit - 1] + "…"


def first_sentence(text: str, limit: int = 100) -> str:
    flat = " ".join(text.split())
    return first_line(SENTENCE_END.split(flat, maxsplit=1)[0], limit)


def summarize(data: Mapping[str, Any], limit: int = RESULT_CHARS) -> str:
    """A result in one short line: what it is about, its state and its size, e.g.
    `support@v1 (120 rows)`, `job_3f2a test_sleep RUNNING`, `services: 2`."""
    subject = _subject(data)
    parts: list[str] = []
    if subject is not None:
        parts += [str(subject[key]) for key in SUBJECT_KEYS if _scalar(subject.get(key))][:1]
        parts += [str(subject["kind"])] if isinstance(subject.get("kind"), str) else []
        parts += [str(subject[key]) for key in STATE_KEYS if _scalar(subject.get(key))][:1]
        counts = [f"{subject[key]} {key.replace('_', ' ')}" for key in COUNT_KEYS if isinstance(subject.get(key), int)]
        progress = subject.get("progress")
        if isinstance(progress, Mapping) and progress.get("total"):
            counts.append(f"{progress.get('done') or 0:g}/{progress['total']:g}")
        if counts:
            parts.append(f"({', '.join(counts[:2])})")
    else:
        parts += [str(data[key]) for key in ("name", "version") if _scalar(data.get(key))]
        parts += [f"{key}: {len(value)}" for key, value in data.items() if isinstance(value, list)][:3]
        if not parts:
            parts += [f"{key}={value}" for key, value in data.items() if _scalar(value)][:3]
    parts += [key.replace("_", " ") for key in ("timed_out", "deduplicated") if data.get(key) is True]
    text = " ".join(parts) or "done"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _subject(data: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The object a result is about: itself when it has an id, else its one field that has one."""
    if any(_scalar(data.get(key)) for key in ("id", "job_id")):
        return data
    nested = [value for value in data.values() if isinstance(value, Mapping) and _scalar(value.get("id"))]
    return nested[0] if len(nested) == 1 else None


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool) and value != ""
