"""The numbers one job engine runs by: this machine's capacity, queue limits and timings.
Capacity is per host (Executor.hosts): `capacity` is this machine's, which the local
executor offers as its one host."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import Capacity


@dataclass(frozen=True)
class EngineLimits:
    capacity: Capacity
    max_queued_per_principal: int = C.MAX_QUEUED_PER_PRINCIPAL
    max_attempts: int = C.MAX_ATTEMPTS
    heartbeat_s: float = C.HEARTBEAT_S
    lease_s: float = C.LEASE_S
    cancel_grace_s: float = C.CANCEL_GRACE_S
