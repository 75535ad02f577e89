"""Measure this machine: matrix-multiply throughput per device, memory bandwidth, and the
workspace disk's write speed. Runs inside a job worker; torch is used when installed
(and for CUDA devices), NumPy otherwise."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from forge_mcp.jobs.context import JobContext

MATMUL_SIZE = 1024
BANDWIDTH_BYTES = 64 * 1024 * 1024
DISK_CHUNK = 4 * 1024 * 1024
DISK_MAX_BYTES = 512 * 1024 * 1024


class MatmulResult(BaseModel):
    device: str
    available: bool
    backend: Literal["torch", "numpy"] | None = None
    dtype: str | None = None
    matrix_size: int | None = None
    gflops: float | None = Field(None, description="Dense float32 matmul throughput")
    note: str | None = None


class BenchmarkResult(BaseModel):
    matmul: list[MatmulResult]
    memory_bandwidth_gbs: float = Field(description="Large array copy, read + write")
    disk_write_mbs: float = Field(description="Sequential write with fsync, in the workspace")
    seconds_per_test: float
    measured_at: float


def run_benchmark(job: JobContext, devices: list[str], seconds_per_test: float, backend: str) -> BenchmarkResult:
    use_torch = backend == "torch" or (backend == "auto" and importlib.util.find_spec("torch") is not None)
    total = len(devices) + 2
    results = []
    for index, device in enumerate(devices):
        job.progress(index, total, f"matrix multiply on {device}")
        results.append(_matmul(job, device, seconds_per_test, use_torch))
        job.log(f"matmul {device}: {results[-1].model_dump_json()}")
    job.progress(len(devices), total, "memory bandwidth")
    bandwidth = _bandwidth(job, seconds_per_test)
    job.log(f"memory bandwidth: {bandwidth:.2f} GB/s")
    job.progress(len(devices) + 1, total, "workspace disk write speed")
    disk = _disk_write(job, job.run.disk_probe, seconds_per_test)
    job.log(f"disk write: {disk:.1f} MB/s")
    job.progress(total, total, "done")
    return BenchmarkResult(
        matmul=results,
        memory_bandwidth_gbs=round(bandwidth, 2),
        disk_write_mbs=round(disk, 1),
        seconds_per_test=seconds_per_test,
        measured_at=time.time(),
    )


def _matmul(job: JobContext, device: str, seconds: float, use_torch: bool) -> MatmulResult:
    metric = f"matmul_gflops/{device}"
    if device.startswith("cuda"):
        if not use_torch:
            return MatmulResult(device=device, available=False, note="CUDA needs torch; install forge-mcp[train]")
        import torch

        index = int(device.split(":")[1]) if ":" in device else 0
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            return MatmulResult(device=device, available=False, note="no such CUDA device on this machine")
    if use_torch:
        import torch

        torch.manual_seed(0)
        a = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device)
        b = torch.randn(MATMUL_SIZE, MATMUL_SIZE, device=device)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

        def step() -> None:
            torch.mm(a, b)
            sync()

        backend: Literal["torch", "numpy"] = "torch"
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        a = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)
        b = rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32)

        def step() -> None:
            a @ b

        backend = "numpy"
    step()  # warm-up
    flops_per_step = 2 * MATMUL_SIZE**3
    iterations, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or iterations == 0:
        step()
        iterations += 1
        job.check_canceled()
        if iterations % 4 == 0:
            job.metric(metric, iterations, flops_per_step * iterations / (time.perf_counter() - started) / 1e9)
    gflops = flops_per_step * iterations / max(elapsed, 1e-9) / 1e9
    job.metric(metric, iterations, gflops)
    return MatmulResult(
        device=device, available=True, backend=backend, dtype="float32", matrix_size=MATMUL_SIZE, gflops=round(gflops, 2)
    )


def _bandwidth(job: JobContext, seconds: float) -> float:
    import numpy as np

    source = np.ones(BANDWIDTH_BYTES // 8, dtype=np.float64)
    target = np.empty_like(source)
    copies, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or copies == 0:
        np.copyto(target, source)
        copies += 1
        job.check_canceled()
    rate = 2 * BANDWIDTH_BYTES * copies / max(elapsed, 1e-9) / 1e9
    job.metric("memory_bandwidth_gbs", copies, rate)
    return rate


def _disk_write(job: JobContext, path: Path, seconds: float) -> float:
    chunk = os.urandom(DISK_CHUNK)
    written, started = 0, time.perf_counter()
    try:
        with path.open("wb") as f:
            while (time.perf_counter() - started < seconds or written == 0) and written < DISK_MAX_BYTES:
                f.write(chunk)
                written += DISK_CHUNK
                job.check_canceled()
            f.flush()
            os.fsync(f.fileno())
        elapsed = time.perf_counter() - started
    finally:
        path.unlink(missing_ok=True)
    rate = written / max(elapsed, 1e-9) / 1e6
    job.metric("disk_write_mbs", written / 1e6, rate)
    return rate
