"""Core: what this server is, what it runs on, and how busy that machine is."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.hardware.probe import SystemStatus
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.system.overview import Overview

toolset = Toolset("core", "What this server can do, the hardware it runs on, and live resource use.")


@toolset.resource("forge://overview", name="overview")
async def overview_resource(services: Services, principal: Principal) -> Overview:
    """The same document forge_overview returns, for clients that read resources."""
    return await services.system.overview(principal)


@toolset.capability(scope="read", title="Forge overview", read_only=True)
async def forge_overview(services: Services, principal: Principal) -> Overview:
    """Start here: this server's version, its toolsets and tools (the scope each needs, which start
    long-running jobs), the hardware (CPU, RAM, disk, NVIDIA GPUs, whether MLX can run), which
    optional backends are installed and what the workspace holds. Read-only and cheap; call it
    once per session to plan."""
    return await services.system.overview(principal)


@toolset.capability(scope="read", title="System status", read_only=True)
async def system_status(
    services: Services,
    sample_seconds: Annotated[
        float, Field(ge=0.05, le=5.0, description="How long to sample CPU load, in seconds")
    ] = 0.25,
) -> SystemStatus:
    """Live load of the server's machine: CPU (overall and per core), RAM, swap, free workspace
    disk, and per-GPU utilisation, memory, temperature and power. Read-only; takes about
    `sample_seconds`. Check it before heavy work or when a job seems to saturate the machine."""
    return await services.system.status(sample_seconds)


@toolset.capability(scope="train", title="Benchmark this machine", long_running=True, job_kind="system_benchmark")
async def system_benchmark(
    services: Services,
    principal: Principal,
    seconds_per_test: Annotated[float, Field(ge=0.1, le=60.0, description="Time budget for each measurement")] = 3.0,
    devices: Annotated[
        list[str] | None, Field(description="'cpu', 'cuda' (every GPU) or 'cuda:N'; default: cpu and every GPU")
    ] = None,
    backend: Annotated[
        Literal["auto", "torch", "numpy"], Field(description="Matmul library; auto = torch when installed")
    ] = "auto",
    priority: Annotated[int, Field(ge=-100, le=100, description="Higher starts first")] = 0,
    idempotency_key: Annotated[
        str | None, Field(max_length=128, description="Same key and arguments return the same job")
    ] = None,
) -> JobHandle:
    """Starts a job that measures this machine: float32 matmul throughput per device (torch when
    installed, else NumPy), memory bandwidth and workspace disk write speed. Takes about
    (devices + 2) x seconds_per_test and loads the machine meanwhile. Returns a job_id; follow
    it with job_wait. forge_overview shows the newest result; training time estimates use it."""
    return await services.system.benchmark(
        principal, seconds_per_test, devices, backend, priority=priority, idempotency_key=idempotency_key
    )
