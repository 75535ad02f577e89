"""The gauges /metrics adds, read from the store at scrape time: jobs by state, queued jobs by
admission lane, each host's and GPU's latest sample (a host that stopped answering drops out),
the tokens/s each running job reported last; and every family named even with nothing in it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.states import JobState
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.samples import GpuSample, HostSample
from forge_mcp.settings import load_settings
from tests.monitoring.support import FAMILIES

GIB = 1024**3
@pytest.fixture
async def forge(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    """Test kinds and one GPU slot, no engine: what is submitted stays queued."""
    app = ForgeApp(load_settings(home=tmp_path / "ws", test_job_kinds=True, gpu_slots=1))
    await app.start(engine=False)
    yield app
    await app.stop()


async def scraped(app: ForgeApp) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Family name -> {sorted labels: value}, parsed from what /metrics would serve."""
    text = (await app.metrics.scrape()).decode()
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
            for family in text_string_to_metric_families(text)}  # fmt: skip


async def test_every_family_is_served_with_help_and_type_even_when_empty(forge: ForgeApp) -> None:
    text = (await forge.metrics.scrape()).decode()
    for name in FAMILIES:
        assert f"# HELP {name} " in text and f"# TYPE {name} gauge" in text, name
    assert "forge_gpu_power_watts{" not in text  # no GPU and no sample yet: named, no value
    families = await scraped(forge)
    assert families["forge_jobs"] == {(("state", s.value),): 0.0 for s in JobState}
    assert families["forge_job_queue_depth"] == {(("lane", "gpu"),): 0.0, (("lane", "cpu"),): 0.0, (("lane", "service"),): 0.0}


async def test_jobs_by_state_queued_by_lane_and_the_throughput_of_running_jobs(forge: ForgeApp) -> None:
    submit = forge.jobs.submit
    await submit("test_sleep", {"seconds": 1, "gpus": 1}, "alice")
    await submit("test_sleep", {"seconds": 1}, "alice")
    await submit("test_sleep", {"seconds": 1}, "bob")
    await submit("test_orchestration", {"gpus": 0}, "alice")  # run by the server itself: waits in no lane
    first, second = [(await submit("test_events", {}, owner)).job_id for owner in ("alice", "bob")]
    now = time.time()
    for job_id, last in ((first, 250.5), (second, 100.0)):
        await forge.jobs.repo.transition(job_id, JobState.RUNNING, executor="local", host="this-machine")
        await forge.jobs.repo.add_metrics(job_id, [("tokens_per_s", 1, 180.0, now), ("tokens_per_s", 2, last, now),
                                                   ("loss", 3, 1.5, now)])  # fmt: skip
    families = await scraped(forge)
    assert families["forge_jobs"][(("state", "QUEUED"),)] == 4 and families["forge_jobs"][(("state", "RUNNING"),)] == 2
    assert families["forge_job_queue_depth"] == {(("lane", "gpu"),): 1.0, (("lane", "cpu"),): 2.0, (("lane", "service"),): 0.0}
    # Each job's newest value, summed by kind and host (as the monitor names it); no job ids: a
    # `read` key sees only its own jobs through the tools, and /metrics does not undo that.
    assert families["forge_training_tokens_per_second"] == {(("host", "local"), ("kind", "test_events")): 350.5}
    for job_id in (first, second):
        await forge.jobs.repo.transition(job_id, JobState.SUCCEEDED)
    assert (await scraped(forge))["forge_training_tokens_per_second"] == {}  # only running jobs


async def test_hosts_and_gpus_from_each_hosts_latest_fresh_sample(forge: ForgeApp) -> None:
    now = time.time()
    h100 = GpuSample(index=0, name="NVIDIA H100", utilization_percent=87.0, memory_used_bytes=60 * GIB,
                     memory_total_bytes=80 * GIB, temperature_celsius=64.0, power_watts=512.5)  # fmt: skip
    unsupported = GpuSample(index=1, name="Tesla T4", memory_used_bytes=GIB, memory_total_bytes=16 * GIB)
    samples = SampleRepository(forge.store)
    await samples.add({"gpu-box": HostSample(unix_time_s=now - 20, cpu_percent=10.0, gpus=[h100])}, prune_before=0)
    await samples.add({"gpu-box": HostSample(unix_time_s=now - 5, cpu_percent=50.0, ram_used_bytes=3 * GIB,
                                             ram_total_bytes=8 * GIB, gpus=[h100, unsupported]),
                       "gone-box": HostSample(unix_time_s=now - 3600, cpu_percent=99.0)}, prune_before=0)  # fmt: skip
    families = await scraped(forge)
    assert families["forge_host_cpu_ratio"] == {(("host", "gpu-box"),): 0.5}  # the newest; gone-box is stale
    assert families["forge_host_memory_used_bytes"] == {(("host", "gpu-box"),): 3 * GIB}
    assert families["forge_host_disk_free_bytes"] == {}  # not reported: no value rather than a guess
    first = (("gpu", "0"), ("host", "gpu-box"), ("name", "NVIDIA H100"))
    second = (("gpu", "1"), ("host", "gpu-box"), ("name", "Tesla T4"))
    assert families["forge_gpu_utilization_ratio"] == {first: 0.87}
    assert families["forge_gpu_memory_used_bytes"] == {first: 60 * GIB, second: GIB}
    assert families["forge_gpu_memory_total_bytes"] == {first: 80 * GIB, second: 16 * GIB}
    assert families["forge_gpu_temperature_celsius"] == {first: 64.0}
    assert families["forge_gpu_power_watts"] == {first: 512.5}
