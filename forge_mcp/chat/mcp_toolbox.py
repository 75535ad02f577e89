"""The operator's tools over an MCP client session: `forge-mcp chat` drives forge-mcp the way
any other MCP client does, so what the person sees is what the protocol carries.

A tool's toolset is not in tools/list (no _meta there): forge_overview's result names the
tools of each toolset, and the chat offers the model the tools of the settings'
operator_toolsets. Destructive and read-only come from the tools' annotations. A call's
result reaches the model as JSON text (structured content), as its text content when there
is none, and an error as its message: a failed call never ends the conversation.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, Tool

from forge_mcp.agents.operator_model import ServedEndpoint
from forge_mcp.agents.operator_tools import OperatorTool, ToolOutcome, result_text
from forge_mcp.capabilities import ImageAttachment, ProgressReporter
from forge_mcp.errors import Conflict, ForgeError, InvalidArguments
from forge_mcp.jobs.constants import WAIT_MAX_S

log = logging.getLogger("forge_mcp.chat")

OVERVIEW_TOOL = "forge_overview"
CONNECT_TIMEOUT_S = 30.0
# job_wait may hold a response up to WAIT_MAX_S (progress keeps the stream busy, but not always).
READ_TIMEOUT_S = WAIT_MAX_S + 60.0
VERSION_PATTERN = re.compile(r"@v\d+$")


# connecting ----------------------------------------------------------------------------------


def stdio_server(home: Path, log_level: str, hidden_env: Collection[str] = ()) -> StdioServerParameters:
    """`forge-mcp stdio` of this very installation on the same workspace. It gets this shell's
    environment (FORGE_* settings, caches, devices), as if the person had started it, except
    the variables in `hidden_env` (the operator's model key: the server never needs it)."""
    env = {name: value for name, value in os.environ.items() if name not in hidden_env}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "forge_mcp", "--home", str(home), "--log-level", log_level, "stdio"],
        env=env,
    )


def mcp_endpoint(url: str) -> str:
    """The MCP endpoint of a server given by its base URL or its /mcp/ URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ForgeError(f"--url: {url[:120]!r} is not an http(s) URL; give the server's, e.g. http://127.0.0.1:8765")
    path = parts.path.rstrip("/")
    if not path.endswith("/mcp"):
        path += "/mcp"
    return urlunsplit((parts.scheme, parts.netloc, path + "/", parts.query, ""))


@contextlib.asynccontextmanager
async def connect(server: StdioServerParameters | str, *, key: str | None = None,
                  server_log: Path | None = None) -> AsyncIterator[Client]:  # fmt: skip
    """An MCP client session: a spawned stdio server (its stderr into `server_log`, not over the
    conversation), or the Streamable HTTP endpoint at a URL with `key` as the bearer token."""
    import httpx2
    from mcp.client.stdio import stdio_client
    from mcp.client.streamable_http import streamable_http_client

    refused: list[int] = []  # 401/403 answers: the SDK reports them only as "an error response"

    async def note_refusal(response: Any) -> None:
        if response.status_code in (401, 403):
            refused.append(response.status_code)

    async with contextlib.AsyncExitStack() as stack:
        try:
            if isinstance(server, StdioServerParameters):
                errlog: Any = sys.stderr
                if server_log is not None:
                    server_log.parent.mkdir(parents=True, exist_ok=True)
                    errlog = stack.enter_context(server_log.open("a", encoding="utf-8"))
                client = await stack.enter_async_context(Client(stdio_client(server, errlog=errlog)))
                where = "the forge-mcp stdio server it started" + (f" (its log: {server_log})" if server_log else "")
            else:
                headers = {"authorization": f"Bearer {key}"} if key else {}
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(CONNECT_TIMEOUT_S, read=READ_TIMEOUT_S),
                                       event_hooks={"response": [note_refusal]})  # fmt: skip
                )
                client = await stack.enter_async_context(Client(streamable_http_client(server, http_client=http)))
                where = server
        except Exception as exc:
            if refused:
                scope = "lacks the scope this needs" if refused[-1] == 403 else "is missing, unknown or revoked"
                raise ForgeError(f"{server} refused the key (HTTP {refused[-1]}): it {scope}; give a valid one "
                                 "with --key (forge-mcp keys create on the server's machine)") from None  # fmt: skip
            target = server if isinstance(server, str) else "forge-mcp stdio"
            hint = "; check the URL" if isinstance(server, str) else ""
            raise ForgeError(f"could not connect to {target}: {failure_reason(exc)}{hint}") from None
        log.info("connected to %s", where)
        yield client


def failure_reason(exc: BaseException) -> str:
    """One line for an exception, looking inside the exception groups task groups raise."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# the toolbox ----------------------------------------------------------------------------------


class McpToolBox:
    """The ToolBox of agents/operator_tools.py over an MCP client: tools() is the server's
    tools/list cut to `toolsets`, call() is a tools/call with progress."""

    def __init__(self, client: Client, listed: Sequence[Tool], toolsets: Collection[str],
                 toolset_of: Mapping[str, str] | None) -> None:  # fmt: skip
        self.client = client
        self.listed = {tool.name: tool for tool in listed}  # everything the server offers, toolsets aside
        self.toolsets = list(toolsets)
        offered = [t for t in listed if toolset_of is None or toolset_of.get(t.name) in set(toolsets)]
        self._tools = [operator_tool(t) for t in offered]

    @classmethod
    async def open(cls, client: Client, toolsets: Collection[str]) -> McpToolBox:
        listed = await list_all_tools(client)
        toolset_of = await toolsets_of(client) if OVERVIEW_TOOL in {t.name for t in listed} else None
        if toolset_of is None:
            log.warning("the server offers no %s: the operator gets every tool it lists", OVERVIEW_TOOL)
        toolbox = cls(client, listed, toolsets, toolset_of)
        if not toolbox._tools:
            offered = ", ".join(sorted(set((toolset_of or {}).values())))
            raise InvalidArguments(f"operator_toolsets: the server offers no tool of {', '.join(toolsets) or 'no toolset'}; "
                                   f"its toolsets are: {offered} (--toolsets picks among them)")  # fmt: skip
        return toolbox

    def offers(self, name: str) -> bool:
        """Whether the server has the tool at all (trace_record, serve_list: the chat's own calls)."""
        return name in self.listed

    async def tools(self) -> list[OperatorTool]:
        return list(self._tools)

    async def call(self, name: str, arguments: Mapping[str, Any], progress: ProgressReporter) -> ToolOutcome:
        if name not in {tool.name for tool in self._tools}:
            offered = ", ".join(tool.name for tool in self._tools)
            return ToolOutcome(f"there is no tool {name!r} here; the tools are: {offered}", is_error=True)

        # The MCP client calls back from its own receiving task, whose context lacks the caller's
        # (langgraph's stream writer reads its config from contextvars): each report runs as a
        # task in a copy of the caller's context instead.
        caller = contextvars.copy_context()

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            await asyncio.get_running_loop().create_task(progress(done, total, message), context=caller)

        try:
            result = await self.client.call_tool(name, dict(arguments), progress_callback=on_progress)
        except Exception as exc:  # the connection, or a protocol error: the model reads it, the chat goes on
            log.warning("tools/call %s failed", name, exc_info=True)
            return ToolOutcome(f"the call did not complete: {failure_reason(exc)}", is_error=True)
        return tool_outcome(result)


async def list_all_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


async def toolsets_of(client: Client) -> dict[str, str] | None:
    """tool name -> toolset, from forge_overview (None if it does not answer as expected)."""
    result = await client.call_tool(OVERVIEW_TOOL, {})
    overview = result.structured_content if not result.is_error else None
    if not isinstance(overview, dict):
        return None
    return {tool["name"]: toolset["name"] for toolset in overview.get("toolsets", []) for tool in toolset.get("tools", [])}


def operator_tool(tool: Tool) -> OperatorTool:
    annotations = tool.annotations
    read_only = bool(annotations and annotations.read_only_hint)
    # The spec's default for a tool that is not read-only is destructive: a tool that says
    # nothing is asked about, as forge's own non-destructive tools say so (destructive_hint=False).
    hint = annotations.destructive_hint if annotations is not None else None
    destructive = not read_only and (hint is None or hint)
    parameters = dict(tool.input_schema)
    parameters.pop("additionalProperties", None)  # as capability_tool: unknown arguments are refused anyway
    return OperatorTool(tool.name, tool.description or tool.title or tool.name, parameters,
                        destructive=destructive, read_only=read_only)  # fmt: skip


def tool_outcome(result: CallToolResult) -> ToolOutcome:
    """What the model reads of a tools/call result, and what the chat shows of it."""
    texts = [block.text for block in result.content if block.type == "text"]
    if result.is_error:
        return ToolOutcome("\n".join(texts).strip() or "the tool failed without saying why", is_error=True)
    images = [ImageAttachment(mime_type=block.mime_type, data_base64=block.data, description="an image the tool returned")
              for block in result.content if block.type == "image"]  # fmt: skip
    data = result.structured_content
    if not isinstance(data, dict):
        return ToolOutcome("\n".join(texts), images=images)
    data = dict(data)
    # A chart travels as image content and, whole, in the structured result: the model gets a
    # placeholder instead of kilobytes of base64 (as split_images does in the server).
    for name, value in data.items():
        if isinstance(value, dict) and isinstance(value.get("data_base64"), str):
            described = [i for i in images if i.data_base64 == value["data_base64"]]
            for image in described:
                image.description = str(value.get("description") or image.description)
            mime = value.get("mime_type", "image/png")
            data[name] = {**value, "data_base64": f"<{mime}, sent as an attachment>"}
    job_id = data.get("job_id") if isinstance(data.get("job_id"), str) and "next_step" in data else None  # a JobHandle
    return ToolOutcome(result_text(data), data=data, images=images, job_id=job_id)


# forge:<name>@vN ------------------------------------------------------------------------------


def endpoint_lookup(client: Client) -> Any:
    """resolve_model's lookup over MCP: the caller's running service of the version (serve_list
    shows only the caller's own services, an admin's all, each with its URL and key)."""

    async def lookup(version: str) -> ServedEndpoint:
        wanted = {version}
        if not VERSION_PATTERN.search(version):  # '<name>': its newest version, as model_get says
            detail = await client.call_tool("model_get", {"model": version})
            if not detail.is_error and isinstance(detail.structured_content, dict):
                wanted.add(str(detail.structured_content.get("model", {}).get("id")))
        listed = await client.call_tool("serve_list", {})
        if listed.is_error or not isinstance(listed.structured_content, dict):
            reason = " ".join(b.text for b in listed.content if b.type == "text")[:300]
            raise ForgeError(f"--model forge:{version}: serve_list did not answer ({reason or 'no result'})")
        for service in listed.structured_content.get("services", []):
            if service.get("state") == "serving" and service.get("model") in wanted and service.get("url"):
                if not service.get("api_key"):
                    raise ForgeError(f"--model forge:{version}: the server does not tell the key of service "
                                     f"{service.get('job_id')}; give --model openai/{service['model']} with "
                                     f"--api-base {service['url']} and --api-key-env instead")  # fmt: skip
                return ServedEndpoint(model=service["model"], url=service["url"], api_key=service["api_key"])
        raise Conflict(f"--model forge:{version}: no running service of yours serves {version}; start one with "
                       f'serve_start (model="{version}"), or pick another --model')  # fmt: skip

    return lookup
