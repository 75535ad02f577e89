"""One sample of a host's load, as stored and as system_history returns it. Every field
names its unit; a field a host cannot report is None rather than a guess."""

from __future__ import annotations

from pydantic import BaseModel, Field


class GpuSample(BaseModel):
    index: int
    name: str
    utilization_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None


class HostSample(BaseModel):
    unix_time_s: float = Field(description="When it was taken, seconds since the epoch")
    cpu_percent: float | None = Field(None, description="All cores' busy share since the previous sample, 0-100")
    ram_used_bytes: int | None = None
    ram_total_bytes: int | None = None
    disk_free_bytes: int | None = Field(None, description="Where the workspace is (on a target: its remote_dir)")
    disk_total_bytes: int | None = None
    gpus: list[GpuSample] = Field(default_factory=list, description="NVIDIA GPUs (nvidia-smi); empty without one")
