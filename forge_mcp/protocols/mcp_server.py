"""The MCP surface: every capability becomes a tool, every ResourceSpec a resource, every saved
prompt's latest version an MCP prompt (forge_mcp.protocols.mcp_prompts).

This adapter stays thin. Arguments are validated by the capability registry before the
SDK sees them, so MCP clients get the same messages as A2A and CLI callers. Progress
reported by a capability becomes MCP progress notifications; images in a result become
image content; job changes are published as resource updates; a capability's request for
confirmation becomes a form elicitation, for clients that declared the capability.
"""

from __future__ import annotations

import base64
import contextvars
import functools
import hashlib
import inspect
import json
import re
import types
import typing
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.stdio import stdio_server
from mcp.server.subscriptions import SubscriptionBus
from mcp.shared.exceptions import MCPError, NoBackChannelError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    GetPromptResult,
    ImageContent,
    InputRequiredResult,
    SetLevelRequestParams,
    TextContent,
    ToolAnnotations,
)
from mcp.types import Prompt as MCPPrompt
from mcp.types import Tool as MCPTool
from mcp.types.version import is_version_at_least
from pydantic import BaseModel, Field

from forge_mcp import __version__
from forge_mcp.capabilities import Capability, CapabilityRunner, Confirm, ImageAttachment, ResourceSpec, split_images
from forge_mcp.errors import ForgeError, InputRequired
from forge_mcp.prompts.service import PromptService
from forge_mcp.protocols.mcp_logging import McpLogRelay
from forge_mcp.protocols.mcp_prompts import McpPrompts
from forge_mcp.protocols.mcp_stdio import stdio_lines
from forge_mcp.protocols.wire_schema import input_schema, output_schema
from forge_mcp.security.principal import Principal

INSTRUCTIONS = (
    "forge-mcp runs the LLM fine-tuning lifecycle on this machine: datasets, training, evaluation, "
    "export, serving and a model registry. Call forge_overview first to see the tools, hardware and "
    "workspace. Long-running tools return a job_id at once: follow it with job_wait (progress "
    "notifications), job_status, job_logs and job_metrics; stop it with job_cancel."
)
_TEMPLATE_PARAM = re.compile(r"\{(\w+)\}")
# From this protocol version on, a server cannot send requests mid-call: a question rides
# the tool's result (input_required) and the client calls again with the answer.
INPUT_REQUIRED_VERSION = "2026-07-28"
CONFIRM_KEY = "forge_confirm"


def current_principal(auth_enabled: bool) -> Principal:
    """The API key's principal on authenticated HTTP; the local operator on stdio or
    loopback-without-auth. With auth on and no token, nothing is granted (fail closed)."""
    token = get_access_token()
    if token is not None:
        return Principal(name=token.client_id, scopes=frozenset(token.scopes))
    if auth_enabled:
        return Principal(name="anonymous", scopes=frozenset())
    return Principal.local()


class ForgeMCPServer(MCPServer):
    def __init__(
        self, runner: CapabilityRunner, log_relay: McpLogRelay, *, prompts: McpPrompts | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._runner = runner
        self._prompts = prompts  # the saved prompts, read at each request
        # The arguments forge's registry validated for the tool call in flight (call_tool): the
        # tool function hands them to the runner as they are, not to be validated a third time.
        self._validated: contextvars.ContextVar[tuple[str, dict[str, Any]] | None] = contextvars.ContextVar(
            "forge_mcp_validated_call", default=None
        )
        self._wire_schemas: dict[str, tuple[dict[str, Any], dict[str, Any] | None]] = {}
        self._listed: tuple[tuple[Any, ...], list[MCPTool]] | None = None  # (the registered tools, their wire form)
        self.log_relay = log_relay
        # logging/setLevel (2025 era; the 2026 revision moved the level into each request's
        # _meta): the SDK's documented way to serve it is the low-level server's handler table.
        # Registering it also declares the logging capability.
        self._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, log_relay.set_level)

    def add_capability_tools(self, *, auth_enabled: bool) -> None:
        """One tool per capability. The SDK builds each tool's argument model and schemas here
        (most of the server's own start-up): over HTTP this runs once the server is up."""
        for cap in self._runner.registry:
            self.add_tool(
                _tool_function(cap, self._runner, auth_enabled, self.log_relay, self._validated),
                name=cap.name,
                title=cap.title,
                description=cap.description,
                annotations=_annotations(cap),  # no _meta: forge_overview tells each tool's toolset and scope
            )

    async def run_stdio_async(self) -> None:
        """The SDK's stdio transport, reading stdin through a JSON depth check: a line
        nested deeper than MAX_JSON_DEPTH is answered -32600 here (the SDK's parser would
        fail on it without a word, leaving the client waiting)."""
        async with stdio_lines() as stdin, stdio_server(stdin=stdin) as (read_stream, write_stream):
            stdin.reply_through(write_stream)
            lowlevel = self._lowlevel_server
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    async def list_prompts(self) -> list[MCPPrompt]:
        """Prompts registered in code (none today), then the saved prompts' latest versions."""
        registered = await super().list_prompts()
        return registered + (await self._prompts.list() if self._prompts is not None else [])

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Any = None
    ) -> GetPromptResult | InputRequiredResult:
        """An unknown prompt, or a missing argument, is the caller's mistake: -32602 (invalid
        params) with the reason, not an internal error with a traceback in the log."""
        if self._prompt_manager.get_prompt(name) is not None:
            return await super().get_prompt(name, arguments, context)
        if self._prompts is not None:
            return await self._prompts.get(name, arguments)
        raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {name[:80]!r}; this server offers no prompts")

    async def list_tools(self) -> list[MCPTool]:
        """Tools with compact schemas (forge_mcp.protocols.wire_schema): every client pays for this list in
        every conversation. Calls are still validated against the capability's own models. Built once
        per set of registered tools (every MCP client asks for it when it starts)."""
        registered = tuple(self._tool_manager.list_tools())
        if self._listed is not None and _same_items(self._listed[0], registered):
            return list(self._listed[1])
        tools = await super().list_tools()
        for tool in tools:
            if tool.name not in self._wire_schemas:
                output = output_schema(tool.output_schema) if tool.output_schema is not None else None
                self._wire_schemas[tool.name] = (input_schema(tool.input_schema), output)
        listed = [
            tool.model_copy(update={"input_schema": self._wire_schemas[tool.name][0],
                                    "output_schema": self._wire_schemas[tool.name][1]})
            for tool in tools
        ]  # fmt: skip
        self._listed = (registered, listed)
        return list(listed)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            values = self._runner.validate(name, arguments, surface="mcp")
        except ForgeError as exc:
            raise ToolError(exc.message) from None
        token = self._validated.set((name, values))
        try:
            return await super().call_tool(name, arguments, context)
        finally:
            self._validated.reset(token)


def _same_items(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


def build_mcp_server(
    runner: CapabilityRunner,
    *,
    auth_enabled: bool,
    log_level: str,
    subscriptions: SubscriptionBus,
    log_relay: McpLogRelay | None = None,
    tools_later: bool = False,
    prompts: PromptService | None = None,
) -> ForgeMCPServer:
    """With `tools_later`, the caller adds the tools (add_capability_tools) before serving any request.
    With `prompts`, the saved prompts are MCP prompts."""
    registry = runner.registry
    log_relay = log_relay or McpLogRelay(auth_enabled=auth_enabled)
    server = ForgeMCPServer(
        runner,
        log_relay,
        prompts=McpPrompts(prompts, functools.partial(current_principal, auth_enabled)) if prompts else None,
        name="forge-mcp",
        title="forge-mcp",
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=log_level,  # type: ignore[arg-type]
        subscriptions=subscriptions,
    )
    if not tools_later:
        server.add_capability_tools(auth_enabled=auth_enabled)
    for toolset in registry.toolsets:
        for spec in toolset.resources:
            server.resource(spec.uri, name=spec.name, description=spec.description, mime_type="application/json")(
                _resource_function(spec, runner, auth_enabled)
            )
    return server


def _annotations(cap: Capability) -> ToolAnnotations:
    """The hints that differ from the spec's defaults (read-only false, destructive true,
    idempotent false, open-world true); destructive and idempotent mean nothing for a read-only
    tool. No title: the tool's own title says it."""
    if cap.read_only:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)
    return ToolAnnotations(
        destructive_hint=cap.destructive, idempotent_hint=cap.idempotent or None, open_world_hint=False
    )


def _tool_function(
    cap: Capability,
    runner: CapabilityRunner,
    auth_enabled: bool,
    log_relay: McpLogRelay,
    validated: contextvars.ContextVar[tuple[str, dict[str, Any]] | None],
) -> Any:
    async def tool(ctx: Context, **arguments: Any) -> Any:
        async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
            await ctx.report_progress(done, total, message)

        principal = current_principal(auth_enabled)
        checked = validated.get()
        ours = checked is not None and checked[0] == cap.name  # call_tool validated these (else validate here)
        try:
            async with log_relay.request(ctx, principal, job_id=arguments.get("job_id")):
                result = await runner.run(
                    cap.name, checked[1] if ours else arguments, principal,  # type: ignore[index]
                    surface="mcp", progress=progress, confirm=_confirmation(ctx), validated=ours,
                )  # fmt: skip
        except InputRequired as exc:
            return _ask(exc.message)
        except ForgeError as exc:
            raise ToolError(exc.message) from None
        return _with_images(result)

    # The SDK derives the input and output schemas from this signature: the capability's
    # own parameters (without `services` and injected ones) and its return model.
    context = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    tool.__name__ = cap.name
    tool.__doc__ = cap.description
    tool.__signature__ = inspect.Signature([context, *cap.parameters], return_annotation=cap.output)  # type: ignore[attr-defined]
    tool.__annotations__ = {"ctx": Context} | {p.name: p.annotation for p in cap.parameters} | {"return": cap.output}
    return tool


class Confirmation(BaseModel):
    confirm: bool = Field(description="Yes, go ahead")


def _confirmation(ctx: Context) -> Confirm:
    """Confirm through form elicitation: only if the client declared it (a client without it
    is never asked: None, "cannot ask"). Up to 2025-11-25 the server asks mid-call; from
    2026-07-28 on the call ends with input_required and runs again with the answer."""

    async def confirm(message: str) -> bool | None:
        capabilities = ctx.client_capabilities
        elicitation = capabilities.elicitation if capabilities is not None else None
        if elicitation is None or (elicitation.form is None and elicitation.url is not None):
            return None  # no elicitation, or URL mode only
        version = ctx.protocol_version
        if version is not None and is_version_at_least(version, INPUT_REQUIRED_VERSION):
            answer = (ctx.input_responses or {}).get(CONFIRM_KEY)
            if answer is None or ctx.request_state != _digest(message):
                raise InputRequired(message)  # not asked yet, or asked something else
            return _accepted(answer)
        if not ctx.session.can_send_request:
            return None
        try:
            result = await ctx.elicit(message, Confirmation)
        except NoBackChannelError:
            return None
        except (MCPError, ValueError):
            return False  # the client failed to answer: no consent
        return result.action == "accept" and result.data.confirm

    return confirm


def _accepted(answer: Any) -> bool:
    if not isinstance(answer, ElicitResult) or answer.action != "accept":
        return False
    return (answer.content or {}).get("confirm") is True


def _digest(message: str) -> str:
    """Pins an answer to the question it answers (request_state is sealed by the SDK)."""
    return base64.urlsafe_b64encode(hashlib.sha256(message.encode()).digest()[:16]).decode().rstrip("=")


def _ask(message: str) -> InputRequiredResult:
    form = ElicitRequestFormParams(message=message, requested_schema=render_elicitation_schema(Confirmation))
    return InputRequiredResult(input_requests={CONFIRM_KEY: ElicitRequest(params=form)}, request_state=_digest(message))


def _with_images(result: Any) -> Any:
    """A result carrying images goes out as text + image content, structured content intact."""
    if not _may_carry_images(type(result)):
        return result  # most results: no model_dump just to look for images
    data, images = split_images(result)
    if not images:
        return result
    content: list[Any] = [TextContent(type="text", text=json.dumps(data, indent=2))]
    content += [ImageContent(type="image", data=i.data_base64, mime_type=i.mime_type) for i in images]
    return CallToolResult(content=content, structured_content=result.model_dump(mode="json"))


@functools.cache
def _may_carry_images(output: type) -> bool:
    """Whether a result type has a top-level field that can hold an ImageAttachment: known once per type."""
    fields = output.model_fields if isinstance(output, type) and issubclass(output, BaseModel) else {}
    return any(_may_hold_image(f.annotation) for f in fields.values())


def _may_hold_image(annotation: Any) -> bool:
    if annotation is Any or annotation is object:
        return True
    if inspect.isclass(annotation) and (issubclass(annotation, ImageAttachment) or issubclass(ImageAttachment, annotation)):
        return True  # the image type, a subclass, or a base of it such as BaseModel
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _may_hold_image(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:  # only the field's own value counts, not list items
        return any(_may_hold_image(arg) for arg in typing.get_args(annotation))
    return False


def _resource_function(spec: ResourceSpec, runner: CapabilityRunner, auth_enabled: bool) -> Any:
    names = _TEMPLATE_PARAM.findall(spec.uri)

    async def read(**params: str) -> str:
        try:
            model = await runner.read(spec, current_principal(auth_enabled), params)
        except ForgeError as exc:
            raise ResourceError(exc.message) from None
        return model.model_dump_json(indent=2)

    # Template parameters become the function's parameters, as the SDK matches them by name.
    read.__name__ = spec.name
    read.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=str) for n in names], return_annotation=str
    )
    read.__annotations__ = {n: str for n in names} | {"return": str}
    return read

