"""The server and its machine, for a caller: the overview (what this server can do, its
hardware, what the workspace holds, the caller's jobs), live load, and starting a benchmark."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from forge_mcp import __version__
from forge_mcp.capabilities import CapabilityRegistry
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.extras import extras_status
from forge_mcp.hardware.probe import SystemStatus, probe_hardware, sample_status
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.security.principal import Principal
from forge_mcp.system.devices import resolve_devices
from forge_mcp.system.overview import LatestBenchmark, Overview, ToolsetSummary, ToolSummary, WorkspaceSummary
from forge_mcp.workspace import Workspace

BENCHMARK_KIND = "system_benchmark"


class SystemService:
    def __init__(
        self,
        workspace: Workspace,
        registry: CapabilityRegistry,
        engine: JobEngine,
        jobs: JobRepository,
        datasets: DatasetRepository,
        *,
        auth_enabled: bool,
        started_at: float,
    ) -> None:
        self._workspace = workspace
        self._registry = registry
        self._engine = engine
        self._jobs = jobs
        self._datasets = datasets
        self._auth_enabled = auth_enabled
        self._started_at = started_at

    async def overview(self, principal: Principal) -> Overview:
        """Job counts are the caller's (an admin's: all); the newest benchmark is the machine's,
        whoever measured it, but names its job only to its owner (and admins)."""
        ws = self._workspace
        counts = ws.counts()
        hardware = await asyncio.to_thread(probe_hardware, ws.root)
        benchmark = await self._jobs.latest_result(BENCHMARK_KIND)
        benchmark_job = benchmark.id if benchmark and (principal.sees_everything or benchmark.principal == principal.name) else None
        return Overview(
            name="forge-mcp",
            version=__version__,
            uptime_s=round(time.time() - self._started_at, 1),
            auth=self._auth_enabled,
            toolsets=[
                ToolsetSummary(
                    name=t.name,
                    description=t.description,
                    tools=[
                        ToolSummary(name=c.name, title=c.title, scope=c.scope, long_running=c.long_running)
                        for c in t.capabilities
                    ],
                )
                for t in self._registry.toolsets
            ],
            hardware=hardware,
            extras=extras_status(),
            workspace=WorkspaceSummary(
                root=str(ws.root),
                import_roots=[str(p) for p in ws.import_roots],
                datasets=await self._datasets.count(),
                runs=counts.runs,
                models=counts.models,
            ),
            jobs=await self._engine.counts(principal),
            engine_active=self._engine.active,
            latest_benchmark=LatestBenchmark(job_id=benchmark_job, finished_at=benchmark.finished_at, result=benchmark.result)
            if benchmark is not None and benchmark.result is not None
            else None,
        )

    async def status(self, sample_seconds: float) -> SystemStatus:
        return await asyncio.to_thread(sample_status, self._workspace.root, sample_seconds)

    async def benchmark(
        self,
        principal: Principal,
        seconds_per_test: float,
        devices: list[str] | None,
        backend: Literal["auto", "torch", "numpy"],
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        arguments = {
            "devices": resolve_devices(devices, self._engine.limits.capacity.gpu_slots),
            "seconds_per_test": seconds_per_test,
            "backend": backend,
        }
        return await self._engine.submit(
            BENCHMARK_KIND, arguments, principal.name, priority=priority, idempotency_key=idempotency_key
        )
