"""The A2A agent executor: an A2A message whose data part is
`{"tool": NAME, "arguments": {...}}` runs that capability as a task; its result comes
back as a data artifact. A message in plain language goes to the chat operator
(agents/a2a_operator.py), and so does the caller's answer to a task that asked a question."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from a2a.helpers import (
    get_data_parts,
    get_message_text,
    new_data_part,
    new_raw_part,
    new_task_from_user_message,
    new_text_message,
    new_text_part,
)
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Message, TaskState

from forge_mcp.agents.a2a_operator import OperatorDelegate
from forge_mcp.agents.a2a_owners import principal_from
from forge_mcp.agents.a2a_tasks import A2ATaskLedger, job_outcome, progress_text
from forge_mcp.capabilities import CapabilityRunner, split_images
from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.jobs.constants import STREAM_KEEPALIVE_S
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job, JobHandle
from forge_mcp.security.principal import Principal


def tool_request(message: Message | None) -> tuple[str, Mapping[str, Any]] | None:
    """The (tool, arguments) a message asks for, None for a message without a tool data
    part, InvalidArguments for a data part that names a tool badly."""
    if message is None:
        return None
    for data in get_data_parts(message.parts):
        if not isinstance(data, dict) or "tool" not in data:
            continue
        name = data["tool"]
        arguments = data.get("arguments", {})
        if not isinstance(name, str) or not name:
            raise InvalidArguments("data part: 'tool' must be the name of a tool, as a string")
        if not isinstance(arguments, dict):
            raise InvalidArguments("data part: 'arguments' must be an object of named arguments")
        return name, arguments
    return None


class CapabilityAgentExecutor(AgentExecutor):
    def __init__(
        self,
        runner: CapabilityRunner,
        engine: JobEngine,
        ledger: A2ATaskLedger,
        operator: OperatorDelegate | None,
        *,
        auth_enabled: bool,
    ) -> None:
        """`operator`: None when no operator model is set; free text then gets the usage."""
        self._runner = runner
        self._engine = engine
        self._ledger = ledger
        self._operator = operator
        self._auth_enabled = auth_enabled

    def usage(self) -> str:
        names = ", ".join(cap.name for cap in self._runner.registry)
        return (
            "This agent runs forge-mcp tools. Send a message with a data part "
            '{"tool": "<tool name>", "arguments": {...}}, for example '
            '{"tool": "forge_overview", "arguments": {}}. '
            f"Tools: {names}. "
            + ("Or ask in plain language: the operator answers." if self._operator else
               "Requests in plain language need the operator, and it has no model on this server: set operator_model "
               "(FORGE_OPERATOR_MODEL, e.g. openai/<name> with FORGE_OPERATOR_API_BASE) and restart it.")
        )  # fmt: skip

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        try:
            request = tool_request(message)
        except InvalidArguments as exc:
            await event_queue.enqueue_event(self._reply(context, f"{exc.message}. {self.usage()}"))
            return
        if message is None:
            await event_queue.enqueue_event(self._reply(context, self.usage()))
            return
        asked = context.current_task is not None and context.current_task.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        if self._operator is not None and (asked or (request is None and get_message_text(message).strip())):
            principal = principal_from(context.call_context, self._auth_enabled)
            await self._operator.execute(context, event_queue, principal)
            return
        if request is None:
            await event_queue.enqueue_event(self._reply(context, self.usage()))
            return
        name, arguments = request
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        principal = principal_from(context.call_context, self._auth_enabled)
        await self._ledger.track(task.id, task.context_id, context.call_context.user.user_name, name)
        try:
            await self._run(updater, name, arguments, principal)
        except BaseException:
            # Cut off (shutdown, CancelTask): the ledger keeps the task open, so a restart or
            # cancel() settles it; marking it settled here would leave it WORKING forever.
            self._ledger.active.discard(task.id)
            raise
        await self._ledger.settled(task.id)

    async def _run(self, updater: TaskUpdater, name: str, arguments: Mapping[str, Any], principal: Principal) -> None:
        await updater.start_work()

        async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
            share = f"{done:g}/{total:g} " if total else ""
            await updater.update_status(
                TaskState.TASK_STATE_WORKING, updater.new_agent_message([new_text_part(f"{share}{message or ''}")])
            )

        try:
            result = await self._runner.run(name, arguments, principal, surface="a2a", progress=progress)
        except ForgeError as exc:
            await updater.failed(updater.new_agent_message([new_text_part(exc.message)]))
            return
        if isinstance(result, JobHandle):
            await self._follow_job(updater, name, result)
            return
        data, images = split_images(result)
        parts = [new_data_part(data, media_type="application/json")]
        parts += [new_raw_part(base64.b64decode(i.data_base64), media_type=i.mime_type) for i in images]
        await updater.add_artifact(parts, name=f"{name} result", last_chunk=True)
        await updater.complete()

    async def _follow_job(self, updater: TaskUpdater, tool: str, handle: JobHandle) -> None:
        """The task is the job: its progress streams as WORKING updates, its end ends the task."""
        await self._ledger.attach_job(updater.task_id, handle.job_id)

        async def on_progress(job: Job) -> None:
            if not job.terminal:
                await updater.update_status(
                    TaskState.TASK_STATE_WORKING,
                    updater.new_agent_message([new_text_part(progress_text(job))]),
                    metadata={"job_id": job.id, "progress": job.progress.model_dump()},
                )

        job = await self._engine.repo.get(handle.job_id)
        while not job.terminal:
            # A status at least every few seconds, changed or not: a stream that stays silent
            # while a job loads (a trainer's imports take seconds) reads as a dead connection.
            await on_progress(job)
            job = await self._engine.wait(handle.job_id, STREAM_KEEPALIVE_S, on_progress)
        state, parts, text = job_outcome(job)
        if parts:
            await updater.add_artifact(parts, name=f"{tool} result", last_chunk=True)
        await updater.update_status(state, updater.new_agent_message([new_text_part(text)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        """CancelTask: a task that is a job cancels the job (SIGTERM, grace, SIGKILL) first."""
        task = context.current_task
        if task is None:
            return
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        job_id = await self._ledger.job_for(task.id)
        text = "canceled at the client's request"
        if job_id is not None:  # the handler found the task, so the caller may act on it; the job says so too
            job = await self._engine.cancel(job_id, principal_from(context.call_context, self._auth_enabled))
            text = f"job {job_id} is {job.state.value}"
        await updater.cancel(updater.new_agent_message([new_text_part(text)]))
        await self._ledger.settled(task.id)

    @staticmethod
    def _reply(context: RequestContext, text: str) -> Message:
        return new_text_message(text, context_id=context.context_id, task_id=None)
