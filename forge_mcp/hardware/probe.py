"""What this machine has (probe_hardware) and how busy it is (sample_status).

GPUs are read through NVML (the `nvidia-ml-py` package, module `pynvml`) when it is
installed and a driver answers; everything else through psutil. Each GPU field is
optional because consumer cards and drivers leave some of them unsupported.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, Field

GIB = 1024**3


class CpuInfo(BaseModel):
    model: str
    logical_cores: int
    physical_cores: int | None
    architecture: str


class GpuInfo(BaseModel):
    index: int
    name: str
    memory_total_gib: float
    driver_version: str | None = None
    compute_capability: str | None = None


class MlxSupport(BaseModel):
    installed: bool
    metal: bool = Field(description="True on Apple Silicon, where MLX runs on the GPU; else MLX runs on CPU")
    can_run: bool


class HardwareInfo(BaseModel):
    os: str
    python: str
    cpu: CpuInfo
    memory_total_gib: float
    disk_total_gib: float
    disk_free_gib: float
    gpus: list[GpuInfo]
    gpu_note: str | None = Field(None, description="Why no GPU is listed, when none is")
    mlx: MlxSupport


class GpuStatus(BaseModel):
    index: int
    name: str
    utilization_percent: float | None = None
    memory_used_gib: float | None = None
    memory_total_gib: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None


class SystemStatus(BaseModel):
    cpu_percent: float
    cpu_percent_per_core: list[float]
    load_average: list[float] | None
    memory_used_gib: float
    memory_total_gib: float
    memory_percent: float
    swap_used_gib: float
    disk_used_gib: float
    disk_free_gib: float
    disk_percent: float
    gpus: list[GpuStatus]
    gpu_note: str | None = None


def probe_hardware(disk_path: Path) -> HardwareInfo:
    disk = psutil.disk_usage(str(disk_path))
    gpus, note = _nvml_gpus()
    return HardwareInfo(
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        cpu=CpuInfo(
            model=_cpu_model(),
            logical_cores=psutil.cpu_count(logical=True) or os.cpu_count() or 1,
            physical_cores=psutil.cpu_count(logical=False),
            architecture=platform.machine(),
        ),
        memory_total_gib=_gib(psutil.virtual_memory().total),
        disk_total_gib=_gib(disk.total),
        disk_free_gib=_gib(disk.free),
        gpus=gpus,
        gpu_note=note,
        mlx=_mlx_support(),
    )


def gpu_count() -> int:
    """NVIDIA GPUs the driver reports (0 without a driver or without nvidia-ml-py)."""
    try:
        with _nvml() as nv:
            return int(nv.nvmlDeviceGetCount())
    except LookupError:
        return 0


def sample_status(disk_path: Path, interval_s: float) -> SystemStatus:
    """Blocks for `interval_s` to measure CPU load; call it from a worker thread."""
    per_core = psutil.cpu_percent(interval=interval_s, percpu=True)
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    gpus, note = _nvml_status()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return SystemStatus(
        cpu_percent=round(sum(per_core) / max(len(per_core), 1), 1),
        cpu_percent_per_core=per_core,
        load_average=load,
        memory_used_gib=_gib(memory.total - memory.available),
        memory_total_gib=_gib(memory.total),
        memory_percent=memory.percent,
        swap_used_gib=_gib(psutil.swap_memory().used),
        disk_used_gib=_gib(disk.used),
        disk_free_gib=_gib(disk.free),
        disk_percent=disk.percent,
        gpus=gpus,
        gpu_note=note,
    )


def _gib(value: float) -> float:
    return round(value / GIB, 2)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mlx_support() -> MlxSupport:
    installed = importlib.util.find_spec("mlx") is not None
    metal = platform.system() == "Darwin" and platform.machine() == "arm64"
    return MlxSupport(installed=installed, metal=metal, can_run=installed)


@contextmanager
def _nvml() -> Iterator[Any]:
    """Yields the initialised pynvml module, or raises LookupError saying why there is none."""
    if importlib.util.find_spec("pynvml") is None:
        raise LookupError("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise LookupError(f"no NVIDIA driver answered ({exc})") from None
    try:
        yield pynvml
    finally:
        pynvml.nvmlShutdown()


def _optional(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except Exception:  # NVML raises NotSupported per field on many boards
        return None


def _nvml_gpus() -> tuple[list[GpuInfo], str | None]:
    try:
        with _nvml() as nv:
            driver = _optional(nv.nvmlSystemGetDriverVersion)
            gpus = []
            for index in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                capability = _optional(nv.nvmlDeviceGetCudaComputeCapability, handle)
                gpus.append(
                    GpuInfo(
                        index=index,
                        name=_text(nv.nvmlDeviceGetName(handle)),
                        memory_total_gib=_gib(nv.nvmlDeviceGetMemoryInfo(handle).total),
                        driver_version=_text(driver) if driver else None,
                        compute_capability=f"{capability[0]}.{capability[1]}" if capability else None,
                    )
                )
            return gpus, None if gpus else "the NVIDIA driver reports no GPUs"
    except LookupError as exc:
        return [], str(exc)


def _nvml_status() -> tuple[list[GpuStatus], str | None]:
    try:
        with _nvml() as nv:
            out = []
            for index in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                memory = _optional(nv.nvmlDeviceGetMemoryInfo, handle)
                util = _optional(nv.nvmlDeviceGetUtilizationRates, handle)
                temp = _optional(nv.nvmlDeviceGetTemperature, handle, nv.NVML_TEMPERATURE_GPU)
                power = _optional(nv.nvmlDeviceGetPowerUsage, handle)
                limit = _optional(nv.nvmlDeviceGetEnforcedPowerLimit, handle)
                out.append(
                    GpuStatus(
                        index=index,
                        name=_text(nv.nvmlDeviceGetName(handle)),
                        utilization_percent=float(util.gpu) if util is not None else None,
                        memory_used_gib=_gib(memory.used) if memory is not None else None,
                        memory_total_gib=_gib(memory.total) if memory is not None else None,
                        temperature_c=float(temp) if temp is not None else None,
                        power_w=round(power / 1000, 1) if power is not None else None,
                        power_limit_w=round(limit / 1000, 1) if limit is not None else None,
                    )
                )
            return out, None if out else "the NVIDIA driver reports no GPUs"
    except LookupError as exc:
        return [], str(exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
