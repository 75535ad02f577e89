"""system_history's reading of the store: the window, thinning that keeps the newest sample,
the chart, and the refusals that name the field (here through the service; over MCP in
test_monitoring_e2e.py)."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.compute.models import RayConfig
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.samples import GpuSample, HostSample
from forge_mcp.monitoring.service import MonitoringService
from tests.monitoring.support import START, Clock, sampler_for

GIB = 1024**3


async def service_with_rows(app: ForgeApp, clock: Clock, count: int) -> MonitoringService:
    """`count` samples of this machine one minute apart, the newest at the clock's now."""
    samples = SampleRepository(app.store)
    gpu = GpuSample(index=0, name="NVIDIA L4", utilization_percent=40.0, memory_used_bytes=2 * GIB,
                    memory_total_bytes=24 * GIB, temperature_celsius=50.0, power_watts=30.0)  # fmt: skip
    for i in range(count):
        at = clock.now - (count - 1 - i) * 60
        await samples.add({"local": HostSample(unix_time_s=at, cpu_percent=float(i % 100), ram_used_bytes=GIB,
                                               ram_total_bytes=4 * GIB, gpus=[gpu])}, prune_before=0)  # fmt: skip
    return MonitoringService(samples, sampler_for(app, clock, retention_s=24 * 3600), ComputeRepository(app.store), clock=clock)


async def test_the_window_and_thinning_keep_the_newest_sample(app: ForgeApp) -> None:
    clock = Clock()
    service = await service_with_rows(app, clock, 300)
    hour = await service.history("local", 60, 1000, False)
    assert len(hour.samples) == 61 and hour.samples[-1].unix_time_s == START and not hour.thinned
    assert hour.note is None and hour.last_seen_unix_s == START and hour.interval_s == 1.0
    thinned = await service.history("local", 600, 50, False)
    times = [s.unix_time_s for s in thinned.samples]
    assert thinned.thinned and len(times) <= 50 and times[-1] == START and times == sorted(times)


async def test_the_chart_is_a_png_and_needs_samples(app: ForgeApp) -> None:
    clock = Clock()
    service = await service_with_rows(app, clock, 10)
    charted = await service.history("local", 30, 120, True)
    assert charted.chart is not None and charted.chart.mime_type == "image/png"
    clock.now += 3 * 3600  # ten samples, three hours ago: none in the last half hour
    with pytest.raises(InvalidArguments, match=r"^chart: nothing to draw: local: no sample in the last 3 s; last seen"):
        await service.history("local", 30, 120, True)


async def test_refusals_name_the_field_and_the_fix(app: ForgeApp) -> None:
    service = await service_with_rows(app, Clock(), 1)
    with pytest.raises(InvalidArguments, match=r"argument 'host': 'elsewhere' is not monitored; give 'local'"):
        await service.history("elsewhere", 60, 120, False)
    with pytest.raises(InvalidArguments, match=r"argument 'minutes': samples are kept for 1440 minutes .* ask for 1440 or fewer"):
        await service.history("local", 1441, 120, False)


async def test_a_ray_cluster_not_yet_probed_is_known_and_says_when_it_will_be_sampled(app: ForgeApp) -> None:
    targets = ComputeRepository(app.store)
    await targets.add("cluster", "ray", RayConfig(address="127.0.0.1:6379"), principal="admin", created_at=START, probe=None)
    history = await (await service_with_rows(app, Clock(), 1)).history("cluster", 60, 120, False)
    assert history.samples == [] and history.note is not None
    assert history.note.startswith("cluster: never sampled yet; a compute target is sampled once it has been probed")
