"""Core: what this server is, what it runs on, and how busy that machine is."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from pydantic import BaseModel, Field

from forge_mcp import __version__
from forge_mcp.backends.hardware import HardwareInfo, SystemStatus, probe_hardware, sample_status
from forge_mcp.capabilities import Toolset
from forge_mcp.extras import ExtraStatus, extras_status
from forge_mcp.services import Services

toolset = Toolset("core", "What this server can do, the hardware it runs on, and live resource use.")


class ToolSummary(BaseModel):
    name: str
    title: str
    scope: str
    long_running: bool


class ToolsetSummary(BaseModel):
    name: str
    description: str
    tools: list[ToolSummary]


class WorkspaceSummary(BaseModel):
    root: str = Field(description="Workspace folder; relative paths given to tools start here")
    import_roots: list[str] = Field(description="Folders outside the workspace that tools may read from")
    datasets: int
    runs: int
    models: int


class Overview(BaseModel):
    name: str
    version: str
    uptime_s: float
    auth: bool = Field(description="Whether HTTP clients must present an API key")
    toolsets: list[ToolsetSummary]
    hardware: HardwareInfo
    extras: list[ExtraStatus] = Field(description="Optional backends and whether each is installed")
    workspace: WorkspaceSummary


async def build_overview(services: Services) -> Overview:
    ws = services.workspace
    counts = ws.counts()
    hardware = await asyncio.to_thread(probe_hardware, ws.root)
    return Overview(
        name="forge-mcp",
        version=__version__,
        uptime_s=round(time.time() - services.started_at, 1),
        auth=services.settings.auth_enabled,
        toolsets=[
            ToolsetSummary(
                name=t.name,
                description=t.description,
                tools=[
                    ToolSummary(name=c.name, title=c.title, scope=c.scope, long_running=c.long_running)
                    for c in t.capabilities
                ],
            )
            for t in services.registry.toolsets
        ],
        hardware=hardware,
        extras=extras_status(),
        workspace=WorkspaceSummary(
            root=str(ws.root),
            import_roots=[str(p) for p in ws.import_roots],
            datasets=counts.datasets,
            runs=counts.runs,
            models=counts.models,
        ),
    )


@toolset.resource("forge://overview", name="overview")
async def overview_resource(services: Services) -> Overview:
    """The same document forge_overview returns, for clients that read resources."""
    return await build_overview(services)


@toolset.capability(scope="read", title="Forge overview", read_only=True)
async def forge_overview(services: Services) -> Overview:
    """Start here. Describes this forge-mcp server: version, the toolsets and tools it
    offers (with the scope each needs and whether it starts a long-running job), the
    hardware (CPU, RAM, disk, NVIDIA GPUs, whether MLX can run), which optional backends
    are installed, and what the workspace holds. Read-only and cheap; call it once at the
    start of a session to plan what to do next."""
    return await build_overview(services)


@toolset.capability(scope="read", title="System status", read_only=True)
async def system_status(
    services: Services,
    sample_seconds: Annotated[
        float, Field(ge=0.05, le=5.0, description="How long to sample CPU load, in seconds")
    ] = 0.25,
) -> SystemStatus:
    """Live resource use of the machine running the server: CPU load (overall and per
    core), RAM, swap, free workspace disk, and per-GPU utilisation, memory, temperature
    and power when an NVIDIA GPU is present. Read-only; takes about `sample_seconds`.
    Use it before starting heavy work or to see whether a running job is saturating
    the machine."""
    return await asyncio.to_thread(sample_status, services.workspace.root, sample_seconds)
