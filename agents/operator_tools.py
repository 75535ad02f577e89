"""The operator's tools: the capabilities as OpenAI function tools, and how a call runs.

Two toolboxes give the operator the same tools. In the server (free-text A2A messages) a call
goes straight to the CapabilityRunner with the caller's principal, so scopes and ownership
hold exactly as over MCP. In `forge-mcp chat` the operator is an MCP client and a call is an
MCP `tools/call` (forge_mcp.chat.mcp_toolbox). Either way the model reads the same compact
schemas `tools/list` sends, and a result reaches it as JSON text, cut to a bounded size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from forge_mcp.capabilities import (
    Capability,
    CapabilityRunner,
    ImageAttachment,
    ProgressReporter,
    cannot_confirm,
    split_images,
)
from forge_mcp.errors import ForgeError
from forge_mcp.jobs.models import JobHandle
from forge_mcp.protocols.wire_schema import input_schema
from forge_mcp.security.principal import Principal

# What a tool result may cost the model's context: beyond it the JSON is cut and the model told so.
MAX_RESULT_CHARS = 6_000


@dataclass(frozen=True)
class OperatorTool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments, compact as tools/list sends it
    destructive: bool = False  # the operator asks the person before calling it
    read_only: bool = False

    def as_openai(self) -> dict[str, Any]:
        """The tool in the form chat completion APIs take (`tools=[...]`)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}  # fmt: skip


@dataclass
class ToolOutcome:
    text: str  # what the model reads
    is_error: bool = False
    data: dict[str, Any] | None = None  # the structured result (an A2A data part)
    images: list[ImageAttachment] = field(default_factory=list)  # charts (A2A file parts), never sent to the model
    job_id: str | None = None  # when the tool started a job


class ToolBox(Protocol):
    """Where the operator's tool calls run."""

    async def tools(self) -> list[OperatorTool]: ...

    async def call(self, name: str, arguments: Mapping[str, Any], progress: ProgressReporter) -> ToolOutcome: ...


def capability_tool(cap: Capability) -> OperatorTool:
    parameters = input_schema(cap.arguments.model_json_schema())
    parameters.pop("additionalProperties", None)  # as tools/list sends it; unknown arguments are refused anyway
    return OperatorTool(cap.name, cap.description, parameters, destructive=cap.destructive, read_only=cap.read_only)


def call_text(name: str, arguments: Mapping[str, Any], limit: int = 300) -> str:
    """A call as a person reads it: dataset_import(path="support.csv", name="support")."""
    text = ", ".join(f"{key}={json.dumps(value, ensure_ascii=False)}" for key, value in arguments.items())
    return f"{name}({text if len(text) <= limit else text[:limit] + '…'})"


def result_text(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= MAX_RESULT_CHARS:
        return text
    return f"{text[:MAX_RESULT_CHARS]}… [cut: {len(text):,} characters in all; ask for less, e.g. a smaller limit]"


class CapabilityToolBox:
    """In the server: each call runs the capability for the caller's principal (surface "operator").
    The operator has already asked the person before a destructive call, so a capability's own
    confirmation question is not asked again (cannot_confirm: the annotation was the safeguard)."""

    def __init__(self, runner: CapabilityRunner, principal: Principal, toolsets: Sequence[str]) -> None:
        self._runner = runner
        self._principal = principal
        self._caps = [cap for cap in runner.registry if cap.toolset in toolsets]

    async def tools(self) -> list[OperatorTool]:
        return [capability_tool(cap) for cap in self._caps]

    async def call(self, name: str, arguments: Mapping[str, Any], progress: ProgressReporter) -> ToolOutcome:
        if name not in {cap.name for cap in self._caps}:
            offered = ", ".join(cap.name for cap in self._caps)
            return ToolOutcome(f"there is no tool {name!r} here; the tools are: {offered}", is_error=True)
        try:
            result = await self._runner.run(name, arguments, self._principal, surface="operator", progress=progress,
                                            confirm=cannot_confirm)  # fmt: skip
        except ForgeError as exc:
            return ToolOutcome(exc.message, is_error=True)
        data, images = split_images(result)
        job_id = result.job_id if isinstance(result, JobHandle) else None
        return ToolOutcome(result_text(data), data=data, images=images, job_id=job_id)
