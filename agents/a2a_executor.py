"""The A2A agent executor: an A2A message whose data part is
`{"tool": NAME, "arguments": {...}}` runs that capability as a task; its result comes
back as a data artifact. Free text gets a reply that says how to send a structured
request (the conversational operator is a later addition)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from a2a.helpers import get_data_parts, new_data_part, new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import Message

from forge_mcp.capabilities import CapabilityRunner
from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.principal import Principal


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


def principal_from(call: ServerCallContext, auth_enabled: bool) -> Principal:
    credentials = call.state.get("auth")
    if auth_enabled and call.user.is_authenticated and credentials is not None:
        return Principal(name=call.user.user_name, scopes=frozenset(credentials.scopes))
    if auth_enabled:
        # The HTTP layer refuses unauthenticated requests before they get here.
        return Principal(name="anonymous", scopes=frozenset())
    return Principal.local()


class CapabilityAgentExecutor(AgentExecutor):
    def __init__(self, runner: CapabilityRunner, *, auth_enabled: bool) -> None:
        self._runner = runner
        self._auth_enabled = auth_enabled

    def usage(self) -> str:
        names = ", ".join(cap.name for cap in self._runner.registry)
        return (
            "This agent runs forge-mcp tools. Send a message with a data part "
            '{"tool": "<tool name>", "arguments": {...}}, for example '
            '{"tool": "forge_overview", "arguments": {}}. '
            f"Tools: {names}. Free-text requests need the operator agent, which this server does not run yet."
        )

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        try:
            request = tool_request(message)
        except InvalidArguments as exc:
            await event_queue.enqueue_event(self._reply(context, f"{exc.message}. {self.usage()}"))
            return
        if request is None or message is None:
            await event_queue.enqueue_event(self._reply(context, self.usage()))
            return
        name, arguments = request
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(message)
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        principal = principal_from(context.call_context, self._auth_enabled)
        try:
            result = await self._runner.run(name, arguments, principal, surface="a2a")
        except ForgeError as exc:
            await updater.failed(updater.new_agent_message([new_text_part(exc.message)]))
            return
        await updater.add_artifact(
            [new_data_part(result.model_dump(mode="json"), media_type="application/json")],
            name=f"{name} result",
            last_chunk=True,
        )
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        task = context.current_task
        if task is None:
            return
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.cancel(updater.new_agent_message([new_text_part("canceled at the client's request")]))

    @staticmethod
    def _reply(context: RequestContext, text: str) -> Message:
        return new_text_message(text, context_id=context.context_id, task_id=None)
