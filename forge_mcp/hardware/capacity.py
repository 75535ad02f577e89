"""How much work this machine takes at once: the job engine's limits, from the settings
where the operator set them and from the hardware where they did not."""

from __future__ import annotations

from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.settings import Settings

HOST_MEMORY_SHARE = 0.9  # of physical memory, when job_memory_gb is not set: the rest is the server's and the OS's


def engine_limits(settings: Settings) -> EngineLimits:
    import psutil

    from forge_mcp.hardware.probe import gpu_count

    memory = settings.job_memory_gb or round(HOST_MEMORY_SHARE * psutil.virtual_memory().total / 1024**3, 1)
    return EngineLimits(
        capacity=Capacity(
            gpu_slots=settings.gpu_slots if settings.gpu_slots is not None else gpu_count(),
            cpu_slots=settings.cpu_job_slots,
            memory_gb=memory,
            service_slots=settings.service_slots,
        ),
        max_queued_per_principal=settings.max_queued_per_principal,
        max_attempts=settings.job_max_attempts,
        heartbeat_s=settings.job_heartbeat_s,
        lease_s=settings.job_lease_s,
        cancel_grace_s=settings.job_cancel_grace_s,
    )
