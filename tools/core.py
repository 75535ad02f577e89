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
    """Start here, once per session: the server's version, toolsets and tools (each one's scope;
    which start jobs), hardware (CPU, RAM, disk, NVIDIA GPUs, MLX), installed backends, what the
    workspace holds. Instant, read-only."""
    return await services.system.overview(principal)


@toolset.capability(scope="read", title="System status", read_only=True)
async def system_status(
    services: Services,
    sample_seconds: Annotated[
        float, Field(ge=0.05, le=5.0, description="How long to sample CPU load, in seconds")
    ] = 0.25,
) -> SystemStatus:
    """Live load of the server's machine: CPU (overall, per core), RAM, swap, free disk, per-GPU
    utilisation, memory, temperature, power. Use it before heavy work or when a job seems slow.
    Read-only; takes `sample_seconds`."""
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
    """Measures this machine: matmul throughput per device (torch, else NumPy), memory bandwidth,
    disk write speed. Run it once per machine: training time estimates use the newest result. A job
    of about (devices + 2) x seconds_per_test that loads the machine; follow with job_wait."""
    return await services.system.benchmark(
        principal, seconds_per_test, devices, backend, priority=priority, idempotency_key=idempotency_key
    )
