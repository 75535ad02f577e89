"""The conversation of `forge-mcp chat`: the person's lines go to the operator, its events to
the terminal.

    you> <a request>         the operator's turn: text, tool calls, progress, results
    <question> [y/N]         before a destructive tool; the answer (empty: no) resumes the turn
    /tools  /model [NAME]  /quit (or end of input)

Ctrl-C during a turn cancels that turn (a job it started runs on) and the conversation goes
on; at the prompt it only says how to leave. The conversation is a thread in a checkpointer
in the local workspace, so `--thread ID` resumes it, an open question included. Each turn
that ends is sent to the server as a trace (trace_record, source "chat") when it offers that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forge_mcp.agents.operator_model import OperatorModel, api_key_from, check_model_name, resolve_model
from forge_mcp.chat.mcp_toolbox import McpToolBox, connect, endpoint_lookup, failure_reason, mcp_endpoint, stdio_server
from forge_mcp.chat.terminal import Terminal
from forge_mcp.errors import ForgeError
from forge_mcp.extras import require_extra

if TYPE_CHECKING:
    from mcp import Client

    from forge_mcp.agents.operator import Operator
    from forge_mcp.settings import Settings

log = logging.getLogger("forge_mcp.chat")

# In the local workspace, whichever server the chat talks to.
THREADS_FILE = Path("operator") / "chat-threads.sqlite"
SERVER_LOG = Path("operator") / "chat-server.log"  # the spawned stdio server's stderr
CHAT_LOG = Path("operator") / "chat.log"  # the chat's own log (litellm, the MCP client)
TRACE_TOOL = "trace_record"
TRACE_SOURCE = "chat"
TAGS = ("operator", "chat")
QUIT_COMMANDS = frozenset({"/quit", "/exit", "/q"})
HELP = "/tools lists the tools, /model shows the model (/model NAME switches), /quit leaves (or Ctrl-D)"


@dataclass(frozen=True)
class ChatOptions:
    url: str | None = None  # a running server's URL; None: spawn `forge-mcp stdio` on the workspace
    key: str | None = None  # its API key
    thread: str | None = None  # resume this conversation


def new_thread() -> str:
    return f"chat-{secrets.token_hex(4)}"


async def run_chat(settings: Settings, options: ChatOptions) -> int:
    require_extra("agent", "forge-mcp chat")
    home = settings.home.expanduser().resolve()
    warm = asyncio.create_task(asyncio.to_thread(prepare_litellm))  # seconds of imports, while the server starts
    try:
        return await _converse(settings, options, home, warm)
    except BaseExceptionGroup as group:
        # The MCP client's task groups wrap what the conversation raised: a ForgeError (no such
        # model, no service) is still the person's to read as one line.
        raise _forge_error_in(group) or group from None
    finally:
        if not warm.done():
            warm.cancel()
            with contextlib.suppress(BaseException):
                await warm


def _forge_error_in(group: BaseExceptionGroup) -> ForgeError | None:
    for exc in group.exceptions:
        found = _forge_error_in(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, ForgeError):
            return found
    return None


async def _converse(settings: Settings, options: ChatOptions, home: Path, warm: asyncio.Task[None]) -> int:
    check_model_name(settings.operator_model)  # before a server is started for nothing
    api_key = api_key_from(settings.operator_api_key_env)
    if options.url is not None:
        target: Any = mcp_endpoint(options.url)
    else:
        hidden = [settings.operator_api_key_env] if settings.operator_api_key_env else []
        target = stdio_server(home, settings.log_level, hidden)
    async with connect(target, key=options.key, server_log=home / SERVER_LOG) as client:
        toolbox = await McpToolBox.open(client, settings.operator_toolsets)
        # A model that cannot be had is said before the imports finish, not after.
        model = await resolve_model(settings.operator_model, settings.operator_api_base, api_key,
                                    endpoint_lookup(client))  # fmt: skip
        await warm
        from forge_mcp.agents.operator import open_checkpointer

        async with await open_checkpointer(home / THREADS_FILE) as checkpointer:
            session = ChatSession(Terminal.for_process(), client, toolbox, checkpointer,
                                  thread=options.thread or new_thread(), api_base=settings.operator_api_base,
                                  api_key=api_key)  # fmt: skip
            await session.start(model)
            return await session.run()


def prepare_litellm() -> None:
    """litellm's import (seconds) and its manners: no price table from the network, no
    'Give Feedback' banners, and its log records to the chat's log file, not over the
    conversation (its handler writes INFO records to stdout)."""
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import langchain_litellm  # noqa: F401
    import litellm

    litellm.suppress_debug_info = True
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


class ChatSession:
    def __init__(self, term: Terminal, client: Client, toolbox: McpToolBox, checkpointer: Any, *, thread: str,
                 api_base: str | None, api_key: str | None) -> None:  # fmt: skip
        self.term = term
        self.client = client
        self.toolbox = toolbox
        self.checkpointer = checkpointer
        self.thread = thread
        self.api_base = api_base  # for a model named on its own (--model, /model NAME)
        self.api_key = api_key
        self.operator: Operator | None = None
        self._turn: asyncio.Task[str | None] | None = None

    # the model -----------------------------------------------------------------------------

    async def start(self, model: OperatorModel) -> None:
        """The operator on `model`; a new one on the same thread when the model changes."""
        from forge_mcp.agents.operator import Operator

        self.operator = await Operator.create(model, self.toolbox, self.checkpointer, trace_sink=self._record_trace,
                                              tags=TAGS, system_prompt=await self._system_prompt())  # fmt: skip

    async def _system_prompt(self) -> str:
        """The server's `operator-system` prompt (MCP prompts/get), as the server's own operator
        uses it; the packaged text when the server does not offer it (an older server)."""
        from forge_mcp.agents.operator import SYSTEM_PROMPT
        from forge_mcp.prompts.defaults import OPERATOR_SYSTEM

        try:
            prompt = await self.client.get_prompt(OPERATOR_SYSTEM)
        except Exception:  # noqa: BLE001 - any refusal: the packaged text is the right fallback
            log.info("the server offers no %s prompt; using the packaged one", OPERATOR_SYSTEM, exc_info=True)
            return SYSTEM_PROMPT
        texts = [m.content.text for m in prompt.messages if getattr(m.content, "type", None) == "text"]
        return "\n".join(texts) or SYSTEM_PROMPT

    async def use_model(self, name: str) -> None:
        """/model NAME: a model named on its own goes to the endpoint of --api-base; forge:<name>@vN
        to its running service."""
        await self.start(await resolve_model(name, self.api_base, self.api_key, endpoint_lookup(self.client)))

    @property
    def model(self) -> OperatorModel:
        assert self.operator is not None
        return self.operator.model

    def _model_text(self) -> str:
        return self.model.name + (f" at {self.model.api_base}" if self.model.api_base else "")

    # the loop ------------------------------------------------------------------------------

    async def run(self) -> int:
        assert self.operator is not None
        self.term.info(f"forge-mcp chat · model {self._model_text()} · {len(self.operator.tools)} tools")
        self.term.info(f"thread {self.thread} (resume it with --thread {self.thread}) · {HELP}")
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            pending = await self.operator.pending_question(self.thread)
            if pending is not None and not await self._answer(pending):
                return 0
            while True:
                line = await self.term.read_line(self.term.prompt_text())
                if line is None:
                    return 0
                text = line.strip()
                if not text:
                    continue
                if text.startswith("/"):
                    if not await self._command(text):
                        return 0
                    continue
                question = await self._run_turn(text)
                if question is not None and not await self._answer(question):
                    return 0
        finally:
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGINT)

    def _interrupt(self) -> None:
        if self._turn is not None and not self._turn.done():
            self._turn.cancel()
        else:
            self.term.interrupted_at_prompt()

    async def _answer(self, question: str) -> bool:
        """Ask until the turn no longer waits on a question; False when the input ended first
        (the question stays open in the thread: --thread asks it again)."""
        while True:
            answer = await self.term.read_line(self.term.question_text(question))
            if answer is None:
                self.term.info(f"the question stays open; resume with --thread {self.thread}")
                return False
            followup = await self._run_turn(answer.strip() or "no")
            if followup is None:
                return True
            question = followup

    async def _run_turn(self, text: str) -> str | None:
        """One turn, or its part up to a question (returned). Ctrl-C cancels it."""
        self._turn = asyncio.create_task(self._stream(text))
        try:
            return await self._turn
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the chat itself is being stopped, not just this turn
            self.term.error("cancelled: the turn stopped here (a job it started runs on; job_list shows it)")
            return None
        finally:
            self._turn = None

    async def _stream(self, text: str) -> str | None:
        from forge_mcp.agents.operator import Question, TextDelta, ToolFinished, ToolProgress, ToolStarted, TurnEnded

        assert self.operator is not None
        async for event in self.operator.send(self.thread, text):
            if isinstance(event, TextDelta):
                self.term.text(event.text)
            elif isinstance(event, ToolStarted):
                self.term.tool_started(event.name, event.arguments)
            elif isinstance(event, ToolProgress):
                self.term.tool_progress(event.call_id, event.name, event.done, event.total, event.message)
            elif isinstance(event, ToolFinished):
                self.term.tool_finished(event.call_id, event.name, event.outcome)
            elif isinstance(event, Question):
                self.term.end_text()
                return event.text
            elif isinstance(event, TurnEnded):
                self.term.end_text()
                if event.outcome == "failed":
                    self.term.error(event.answer)
        return None

    # commands ------------------------------------------------------------------------------

    async def _command(self, text: str) -> bool:
        """A /command; False to leave."""
        command, _, argument = text.partition(" ")
        argument = argument.strip()
        if command in QUIT_COMMANDS:
            return False
        if command == "/tools":
            assert self.operator is not None
            self.term.tool_list(self.operator.tools)
        elif command == "/model" and not argument:
            self.term.info(f"model {self._model_text()}")
        elif command == "/model":
            try:
                await self.use_model(argument)
            except ForgeError as exc:
                self.term.error(exc.message)
            else:
                self.term.info(f"model {self._model_text()} (thread {self.thread} goes on)")
        else:
            self.term.info(f"unknown command {command}: {HELP}")
        return True

    # traces --------------------------------------------------------------------------------

    async def _record_trace(self, trace: dict[str, Any]) -> None:
        """The operator's trace sink: the turn goes to the server's traces, if it keeps them.
        A failure is a warning: the answer is what matters to the person."""
        if not self.toolbox.offers(TRACE_TOOL):
            return
        try:
            result = await self.client.call_tool(TRACE_TOOL, {**trace, "source": TRACE_SOURCE})
        except Exception as exc:
            log.warning("trace_record failed", exc_info=True)
            self.term.warning(f"this turn's trace was not recorded: {failure_reason(exc)}")
            return
        if result.is_error:
            reason = " ".join(block.text for block in result.content if block.type == "text")
            self.term.warning(f"this turn's trace was not recorded: {' '.join(reason.split())[:200]}")
