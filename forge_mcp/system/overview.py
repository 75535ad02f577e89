"""What forge_overview returns: the server, its tools, its machine and what the workspace holds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.extras import ExtraStatus
from forge_mcp.hardware.probe import HardwareInfo


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


class LatestBenchmark(BaseModel):
    job_id: str | None = Field(description="Its job; only when it is yours (an admin: always)")
    finished_at: float | None
    result: dict[str, Any]


class Overview(BaseModel):
    name: str
    version: str
    uptime_s: float
    auth: bool = Field(description="Whether HTTP clients must present an API key")
    toolsets: list[ToolsetSummary]
    hardware: HardwareInfo
    extras: list[ExtraStatus] = Field(description="Optional backends and whether each is installed")
    workspace: WorkspaceSummary
    jobs: dict[str, int] = Field(description="Your jobs by state (an admin: all jobs)")
    engine_active: bool = Field(description="Whether this process supervises the workspace's jobs")
    latest_benchmark: LatestBenchmark | None = Field(None, description="The newest successful system_benchmark")
