"""What the monitoring tests share: a clock they set, a sampler on it, the gauge families."""

from __future__ import annotations

from forge_mcp.app import ForgeApp
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.sampler import SystemSampler

HOUR = 3600.0
START = 1_800_000_000.0  # a fixed clock: the rows' times are the sampler's, not the wall's
FAMILIES = (
    "forge_jobs", "forge_job_queue_depth", "forge_training_tokens_per_second",
    "forge_host_cpu_ratio", "forge_host_memory_used_bytes", "forge_host_memory_total_bytes",
    "forge_host_disk_free_bytes", "forge_host_disk_total_bytes",
    "forge_gpu_utilization_ratio", "forge_gpu_memory_used_bytes", "forge_gpu_memory_total_bytes",
    "forge_gpu_temperature_celsius", "forge_gpu_power_watts",
)  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def sampler_for(app: ForgeApp, clock: Clock, retention_s: float = HOUR) -> SystemSampler:
    """A sampler of the app's workspace on `clock`, one second apart, keeping `retention_s`."""
    return SystemSampler(SampleRepository(app.store), ComputeRepository(app.store), app.workspace,
                         interval_s=1.0, retention_s=retention_s, clock=clock)  # fmt: skip
