"""The job kind that measures this machine (system_benchmark); its code is backends/benchmark.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.backends.benchmark import BenchmarkResult, run_benchmark
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources

BENCHMARK_MEMORY_GB = 1.0


class BenchmarkArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    devices: list[str] = Field(description="Explicit device names: 'cpu', 'cuda:N'")
    seconds_per_test: float
    backend: Literal["auto", "torch", "numpy"] = "auto"


def benchmark_resources(arguments: BenchmarkArguments) -> Resources:
    return Resources(gpus=sum(1 for d in arguments.devices if d.startswith("cuda")), memory_gb=BENCHMARK_MEMORY_GB)


def benchmark(job: JobContext, arguments: BenchmarkArguments) -> BenchmarkResult:
    return run_benchmark(job, arguments.devices, arguments.seconds_per_test, arguments.backend)


SYSTEM_BENCHMARK = JobKind("system_benchmark", BenchmarkArguments, BenchmarkResult, benchmark, benchmark_resources)
