"""Core: what this server is, what it runs on, and how busy that machine is."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, Field

from forge_mcp import __version__
from forge_mcp.capabilities import Toolset
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import ExtraStatus, extras_status
from forge_mcp.hardware.probe import HardwareInfo, SystemStatus, probe_hardware, sample_status
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

if TYPE_CHECKING:
    from forge_mcp.backends.benchmark import BenchmarkResult

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


async def build_overview(services: Services, principal: Principal) -> Overview:
    ws = services.workspace
    counts = ws.counts()
    hardware = await asyncio.to_thread(probe_hardware, ws.root)
    benchmark = await services.jobs.repo.latest_result("system_benchmark")  # the machine's, whoever measured it
    benchmark_job = benchmark.id if benchmark and (principal.sees_everything or benchmark.principal == principal.name) else None
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
            datasets=await services.datasets.repo.count(),
            runs=counts.runs,
            models=counts.models,
        ),
        jobs=await services.jobs.counts(principal),
        engine_active=services.jobs.active,
        latest_benchmark=LatestBenchmark(job_id=benchmark_job, finished_at=benchmark.finished_at, result=benchmark.result)
        if benchmark is not None and benchmark.result is not None
        else None,
    )


@toolset.resource("forge://overview", name="overview")
async def overview_resource(services: Services, principal: Principal) -> Overview:
    """The same document forge_overview returns, for clients that read resources."""
    return await build_overview(services, principal)


@toolset.capability(scope="read", title="Forge overview", read_only=True)
async def forge_overview(services: Services, principal: Principal) -> Overview:
    """Start here: this server's version, its toolsets and tools (the scope each needs, which start
    long-running jobs), the hardware (CPU, RAM, disk, NVIDIA GPUs, whether MLX can run), which
    optional backends are installed and what the workspace holds. Read-only and cheap; call it
    once per session to plan."""
    return await build_overview(services, principal)


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
    return await asyncio.to_thread(sample_status, services.workspace.root, sample_seconds)


def _benchmark_resources(arguments: dict[str, Any]) -> Resources:
    return Resources(gpus=sum(1 for d in arguments["devices"] if d.startswith("cuda")), memory_gb=1.0)


@toolset.job_kind("system_benchmark", resources=_benchmark_resources)
def benchmark_job(job: JobContext, devices: list[str], seconds_per_test: float, backend: str) -> BenchmarkResult:
    from forge_mcp.backends.benchmark import run_benchmark

    return run_benchmark(job, devices, seconds_per_test, backend)


def resolve_devices(devices: list[str] | None, gpu_slots: int) -> list[str]:
    """'cpu', 'cuda' (every GPU) or 'cuda:N' -> explicit device names; default cpu + every GPU."""
    if devices is None:
        return ["cpu", *(f"cuda:{i}" for i in range(gpu_slots))]
    resolved: list[str] = []
    for device in devices:
        if device == "cpu":
            names = ["cpu"]
        elif device == "cuda":
            if gpu_slots == 0:
                raise InvalidArguments("devices: 'cuda' asked for, but this server has no GPU; use ['cpu']")
            names = [f"cuda:{i}" for i in range(gpu_slots)]
        elif device.startswith("cuda:") and device[5:].isdigit():
            names = [device]
        else:
            raise InvalidArguments(f"devices: {device[:32]!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'")
        resolved.extend(n for n in names if n not in resolved)
    if not resolved:
        raise InvalidArguments("devices: the list is empty; give at least 'cpu'")
    return resolved


@toolset.capability(scope="train", title="Benchmark this machine", long_running=True)
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
    arguments = {
        "devices": resolve_devices(devices, services.jobs.limits.capacity.gpu_slots),
        "seconds_per_test": seconds_per_test,
        "backend": backend,
    }
    return await services.jobs.submit(
        "system_benchmark", arguments, principal.name, priority=priority, idempotency_key=idempotency_key
    )
