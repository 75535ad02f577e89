"""Monitor: how loaded this machine and each compute target have been, sampled in the
background (system_status, in core, is the live reading of this machine)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.monitoring.service import SystemHistory
from forge_mcp.services import Services

toolset = Toolset("monitor", "Load over time: this machine's and each compute target's CPU, RAM, disk and GPUs, as series or a chart.")


@toolset.capability(scope="read", title="System history", read_only=True)
async def system_history(
    services: Services,
    host: Annotated[str, Field(max_length=100, description="'local' (this machine) or a compute target's name")] = "local",
    minutes: Annotated[int, Field(ge=1, le=10_080, description="How far back, up to the retention (24 h by default)")] = 60,
    max_points: Annotated[int, Field(ge=10, le=1000, description="Longer series are thinned evenly")] = 120,
    chart: Annotated[bool, Field(description="Also return a PNG chart, one panel per quantity")] = False,
) -> SystemHistory:
    """A host's sampled load over the last `minutes`, oldest first: cpu_percent, ram_used_bytes,
    ram_total_bytes, disk_free_bytes, disk_total_bytes and per GPU utilization_percent,
    memory_used/total_bytes, temperature_celsius, power_watts. Use it to see whether a run was
    starved or a GPU idle; `chart` adds a PNG (an image). A target that did not answer has no
    samples; the reply says when it was last seen. Instant, read-only."""
    return await services.monitoring.history(host, minutes, max_points, chart)
