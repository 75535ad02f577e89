"""Free-text A2A messages go to the chat operator.

A message in plain language becomes a task the operator works on: each tool step streams as a
WORKING update naming the tool, each thing a step produced (a dataset, a job's result, a chart)
arrives as an artifact of data or file parts, and the task ends with the operator's answer as
a text part. A question from the operator (before a destructive step) parks the task as
`input-required`; the caller's next message on the same task answers it. The conversation is
the task's contextId, kept per caller in the operator's checkpointer, so a later task with the
same contextId continues it, after a restart too. Every finished turn is stored as a trace.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from a2a.helpers import get_message_text, new_data_part, new_raw_part, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Part, TaskState

from forge_mcp.agents.a2a_tasks import A2ATaskLedger
from forge_mcp.agents.operator_model import ServedEndpoint, api_key_from, resolve_model
from forge_mcp.agents.operator_tools import CapabilityToolBox, OperatorTool, ToolOutcome, call_text
from forge_mcp.errors import Conflict, ForgeError, NotFound
from forge_mcp.prompts.defaults import OPERATOR_SYSTEM
from forge_mcp.security.principal import Principal

if TYPE_CHECKING:
    from forge_mcp.agents.operator import Operator
    from forge_mcp.capabilities import CapabilityRunner
    from forge_mcp.services import Services

OPERATOR_TOOL = "operator"  # the ledger's name for a task the operator works on
THREADS_FILE = Path("operator") / "a2a-threads.sqlite"
JOB_STATES_DONE = frozenset({"succeeded", "failed", "canceled"})


def thread_of(principal: Principal, context_id: str) -> str:
    """A conversation is the caller's own: the same contextId from another key is another thread."""
    return f"a2a:{principal.name}:{context_id}"


def produced(tool: OperatorTool | None, outcome: ToolOutcome) -> bool:
    """Whether a step's result is something the caller gets as an artifact: what a tool made or
    changed, a job's final result, or a chart; not what it only looked at."""
    if outcome.is_error or outcome.data is None:
        return False
    if outcome.images or tool is None or not tool.read_only:
        return True
    job = outcome.data.get("job")  # job_wait's, job_status's
    return isinstance(job, dict) and str(job.get("state", "")).lower() in JOB_STATES_DONE


class OperatorDelegate:
    """Runs the operator for A2A tasks. Its checkpointer (and litellm, seconds to import) open at
    the first free-text message, not at start-up; close() releases them."""

    def __init__(self, runner: CapabilityRunner, services: Services, ledger: A2ATaskLedger) -> None:
        self._runner = runner
        self._services = services
        self._ledger = ledger
        self._checkpoints: contextlib.AsyncExitStack | None = None
        self._checkpointer: Any = None
        self._opening = asyncio.Lock()  # two first messages at once must not open two checkpointers
        self._llms: dict[tuple[str, str | None, str | None], Any] = {}

    async def close(self) -> None:
        if self._checkpoints is not None:
            await self._checkpoints.aclose()
        self._checkpoints = self._checkpointer = None

    async def execute(self, context: RequestContext, event_queue: EventQueue, principal: Principal) -> None:
        message = context.message
        assert message is not None  # the executor hands over messages only
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await self._ledger.track(task.id, task.context_id, context.call_context.user.user_name, OPERATOR_TOOL)
        await updater.start_work(updater.new_agent_message([new_text_part("the operator is working on it")]))
        try:
            operator = await self._operator(principal)
        except ForgeError as exc:
            await updater.failed(updater.new_agent_message([new_text_part(exc.message)]))
            await self._ledger.settled(task.id)
            return
        try:
            await self._turn(operator, updater, thread_of(principal, task.context_id), get_message_text(message).strip())
        except BaseException:
            self._ledger.active.discard(task.id)  # cut off: the ledger settles it at the next start
            raise
        # Ended, or parked on a question: either way no executor follows it any more, and a
        # restart must not fail a task that waits for its caller.
        await self._ledger.settled(task.id)

    async def _turn(self, operator: Operator, updater: TaskUpdater, thread: str, text: str) -> None:
        """One turn of the conversation, or its part up to a question."""
        from forge_mcp.agents.operator import Question, ToolFinished, ToolProgress, ToolStarted, TurnEnded

        tools = {tool.name: tool for tool in operator.tools}
        async for event in operator.send(thread, text or "(an empty message)"):
            if isinstance(event, ToolStarted):
                await self._working(updater, f"calling {call_text(event.name, event.arguments)}",
                                    {"tool": event.name, "call_id": event.call_id, "step": "started"})  # fmt: skip
            elif isinstance(event, ToolProgress):
                share = f"{event.done:g}/{event.total:g} " if event.total else ""
                await self._working(updater, f"{event.name}: {share}{event.message or ''}".rstrip(),
                                    {"tool": event.name, "call_id": event.call_id, "step": "progress",
                                     "done": event.done, "total": event.total})  # fmt: skip
            elif isinstance(event, ToolFinished):
                await self._finished(updater, tools.get(event.name), event)
            elif isinstance(event, Question):
                await updater.requires_input(updater.new_agent_message([new_text_part(event.text)]))
                return
            elif isinstance(event, TurnEnded):
                parts = [new_text_part(event.answer)]
                if event.outcome == "answered":
                    await updater.add_artifact(parts, name="answer", last_chunk=True)
                    await updater.complete(updater.new_agent_message(parts))
                else:
                    await updater.failed(updater.new_agent_message(parts))

    async def _finished(self, updater: TaskUpdater, tool: OperatorTool | None, event: Any) -> None:
        outcome: ToolOutcome = event.outcome
        verdict = f"{event.name} refused: {outcome.text}" if outcome.is_error else f"{event.name} done"
        await self._working(updater, verdict[:500], {"tool": event.name, "call_id": event.call_id,
                                                     "step": "failed" if outcome.is_error else "done"})  # fmt: skip
        if produced(tool, outcome):
            parts: list[Part] = [new_data_part({"tool": event.name, "result": outcome.data}, media_type="application/json")]
            parts += [new_raw_part(base64.b64decode(i.data_base64), media_type=i.mime_type) for i in outcome.images]
            await updater.add_artifact(parts, name=f"{event.name} result", last_chunk=True)

    @staticmethod
    async def _working(updater: TaskUpdater, text: str, metadata: dict[str, Any]) -> None:
        await updater.update_status(TaskState.TASK_STATE_WORKING, updater.new_agent_message([new_text_part(text)]),
                                    metadata=metadata)  # fmt: skip

    # the operator for one caller --------------------------------------------------------------

    async def _operator(self, principal: Principal) -> Operator:
        from forge_mcp.agents.operator import Operator, bound_chat_model, open_checkpointer

        settings = self._services.settings
        model = await resolve_model(settings.operator_model, settings.operator_api_base,
                                    api_key_from(settings.operator_api_key_env), self._served(principal))  # fmt: skip
        async with self._opening:
            if self._checkpointer is None:
                stack = contextlib.AsyncExitStack()
                self._checkpointer = await stack.enter_async_context(
                    await open_checkpointer(self._services.workspace.root / THREADS_FILE)
                )
                self._checkpoints = stack
        toolbox = CapabilityToolBox(self._runner, principal, settings.operator_toolsets)
        key = (model.name, model.api_base, model.api_key)
        if key not in self._llms:
            self._llms = {key: await bound_chat_model(model, await toolbox.tools())}  # one model at a time
        system = await self._services.prompts.render(OPERATOR_SYSTEM)  # its latest version, as saved with prompt_save
        return await Operator.create(model, toolbox, self._checkpointer, llm=self._llms[key], system_prompt=system.text,
                                     trace_sink=self._trace_sink(principal), tags=("operator", "a2a"))  # fmt: skip

    def _served(self, principal: Principal) -> Any:
        async def lookup(version: str) -> ServedEndpoint:
            try:
                endpoint = await self._services.serving.running_endpoint(principal, version)
            except NotFound as exc:
                raise NotFound(f"operator_model forge:{version}: {exc.message}") from None
            if endpoint is None:
                raise Conflict(f"operator_model: no running service serves {version}; start one with "
                               f'serve_start (model="{version}"), or set another operator_model')  # fmt: skip
            return ServedEndpoint(model=endpoint.model, url=endpoint.url, api_key=endpoint.api_key)

        return lookup

    def _trace_sink(self, principal: Principal) -> Any:
        from forge_mcp.traces.models import TraceIn

        async def record(trace: dict[str, Any]) -> None:
            await self._services.traces.record(principal, TraceIn.checked(trace), source="a2a")

        return record
