"""MCP prompts from the prompt service (DESIGN §3: versioned prompt templates are MCP prompts).

prompts/list gives the latest version of every saved prompt: its name, its message as the
description, its variables as arguments (all required). prompts/get renders the latest version
with the arguments given into one user message (MCP prompt messages are user or assistant;
a system prompt such as operator-system comes as the user message a client may place where it
likes). Both read the store at each request, so a prompt saved a moment ago, from any surface
or process, is there without a restart. A caller's mistake (an unknown prompt, a missing or
unused argument, a template the sandbox stops) is JSON-RPC -32602 with the service's message;
anything else is -32603 with a reference, the detail in the server log."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mcp.shared.exceptions import MCPError
from mcp.types import INTERNAL_ERROR, INVALID_PARAMS, GetPromptResult, PromptArgument, PromptMessage, TextContent
from mcp.types import Prompt as MCPPrompt

from forge_mcp.errors import ForgeError
from forge_mcp.prompts.limits import MAX_LIST
from forge_mcp.prompts.models import PromptSummary
from forge_mcp.prompts.service import PromptService
from forge_mcp.security.principal import Principal

log = logging.getLogger("forge_mcp.mcp_prompts")
T = TypeVar("T")
KNOWN_SHOWN = 50  # prompt names an unknown-prompt error lists


class McpPrompts:
    def __init__(self, prompts: PromptService, principal: Callable[[], Principal]) -> None:
        self._prompts = prompts
        self._principal = principal  # the caller of the request in flight

    async def list(self) -> list[MCPPrompt]:
        summaries = await self._guarded("prompts/list", self._summaries())
        return [MCPPrompt(name=s.name, description=s.message,
                          arguments=[PromptArgument(name=v, required=v not in s.optional) for v in s.variables]) for s in summaries]  # fmt: skip

    async def get(self, name: str, arguments: dict[str, Any] | None) -> GetPromptResult:
        if not await self._guarded("prompts/get", self._known(name.split("@v", 1)[0])):
            known = [s.name for s in await self._guarded("prompts/get", self._summaries())]
            offered = (
                f"the prompts are: {', '.join(known[:KNOWN_SHOWN])}" if known else "this server has no prompts yet"
            )
            raise MCPError(code=INVALID_PARAMS, message=f"unknown prompt {name[:80]!r}; {offered}")
        rendered = await self._guarded(f"prompts/get {name}", self._prompts.render(name, dict(arguments or {})))
        return GetPromptResult(description=rendered.message,
                               messages=[PromptMessage(role="user", content=TextContent(type="text", text=rendered.text))])  # fmt: skip

    async def _known(self, name: str) -> bool:
        self._principal().require("read", "reading prompts")
        return await self._prompts.exists(name)

    async def _summaries(self) -> list[PromptSummary]:
        self._principal().require("read", "reading prompts")
        return (await self._prompts.list(limit=MAX_LIST)).prompts

    @staticmethod
    async def _guarded(what: str, call: Awaitable[T]) -> T:
        try:
            return await call
        except ForgeError as exc:
            raise MCPError(code=INVALID_PARAMS, message=exc.message) from None
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("%s failed unexpectedly (ref %s)", what, ref)
            raise MCPError(
                code=INTERNAL_ERROR, message=f"internal error (ref {ref}); the server log has the details"
            ) from None
