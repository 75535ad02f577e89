"""The gauges /metrics adds to the request and tool counters: jobs by state, queued jobs by
admission lane, each host's and GPU's latest sample, and the throughput of running training.

Read at scrape time, from the store only (a few indexed reads; never nvidia-smi, never SSH:
the sampler measures, this reads its newest rows). prometheus_client collects synchronously,
so the scrape first awaits `refresh` (Metrics.scrape) and `collect` then yields what it read.
Every family is yielded on every scrape, with no samples when there is nothing to report,
so dashboards and alerts always find their names."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily

from forge_mcp.compute.service import LOCAL
from forge_mcp.jobs.admission import LANES, job_lane
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.states import JobState
from forge_mcp.metrics import ScrapedCollector
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.samples import GpuSample, HostSample
from forge_mcp.monitoring.service import STALE_AFTER_INTERVALS
from forge_mcp.store import Store

log = logging.getLogger("forge_mcp.monitoring")
# The metric training workers report each logging step (backends/hf_train.py, mlx_train.py).
TOKENS_METRIC = "tokens_per_s"

# (name, help, the reading, what it is divided by to be in base units)
HostGauge = tuple[str, str, Callable[[HostSample], float | int | None], float]
GpuGauge = tuple[str, str, Callable[[GpuSample], float | int | None], float]
HOST_GAUGES: tuple[HostGauge, ...] = (
    ("forge_host_cpu_ratio", "Busy share of all CPU cores over the last sampling interval (0-1).", lambda s: s.cpu_percent, 100.0),
    ("forge_host_memory_used_bytes", "RAM in use (total minus available).", lambda s: s.ram_used_bytes, 1.0),
    ("forge_host_memory_total_bytes", "RAM installed.", lambda s: s.ram_total_bytes, 1.0),
    ("forge_host_disk_free_bytes", "Free disk where the host's workspace is.", lambda s: s.disk_free_bytes, 1.0),
    ("forge_host_disk_total_bytes", "Size of the disk where the host's workspace is.", lambda s: s.disk_total_bytes, 1.0),
)
GPU_GAUGES: tuple[GpuGauge, ...] = (
    ("forge_gpu_utilization_ratio", "GPU busy share over nvidia-smi's sample period (0-1).", lambda g: g.utilization_percent, 100.0),
    ("forge_gpu_memory_used_bytes", "GPU memory in use.", lambda g: g.memory_used_bytes, 1.0),
    ("forge_gpu_memory_total_bytes", "GPU memory installed.", lambda g: g.memory_total_bytes, 1.0),
    ("forge_gpu_temperature_celsius", "GPU core temperature.", lambda g: g.temperature_celsius, 1.0),
    ("forge_gpu_power_watts", "GPU power draw.", lambda g: g.power_watts, 1.0),
)


@dataclass
class _Reading:
    read: bool = False  # False: nothing was read (the names only, or a failed read): no job counts either
    states: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    hosts: dict[str, HostSample] = field(default_factory=dict)
    tokens: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, host) -> tokens/s


class ForgeGauges(ScrapedCollector):
    def __init__(self, store: Store, engine: JobEngine, samples: SampleRepository, *, interval_s: float,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._store = store
        self._engine = engine
        self._samples = samples
        self._interval_s = interval_s
        self._clock = clock
        self._reading = _Reading()

    async def refresh(self) -> None:
        """Read what the next collect() reports. A failed read reports empty families, not a 500:
        a scrape that fails loses the request counters too."""
        try:
            self._reading = await self._read()
        except Exception:
            log.exception("reading the gauges for /metrics failed")
            self._reading = _Reading()

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families(_Reading())  # the names, so that the registry refuses a clash at once

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families(self._reading)

    async def _read(self) -> _Reading:
        states = await self._engine.repo.counts()
        # Queued jobs by lane, the way admission places them; jobs of an executor that holds no
        # slots (orchestrations, run by the server itself) wait in no lane.
        rows = await self._store.fetchall(
            "SELECT kind, gpus > 0 AS gpu, executor, COUNT(*) AS n FROM jobs WHERE state = 'QUEUED' "
            "GROUP BY kind, gpu, executor"
        )
        services = frozenset(name for name, kind in self._engine.kinds.items() if kind.service)
        queued = dict.fromkeys(LANES, 0)
        for row in rows:
            executor = self._engine.executors.get(row["executor"])
            if executor is not None and executor.hosts():
                queued[job_lane(row["gpu"], row["kind"], services)] += int(row["n"])
        # Each running job's newest tokens/s (the step is the last part of the metrics' key), summed
        # by kind and host: a job id as a label would show any key with `read` every other key's
        # jobs, which the job tools never do (README, Security).
        rows = await self._store.fetchall(
            "SELECT j.kind, j.executor, j.host, m.value FROM jobs j JOIN job_metrics m ON m.job_id = j.id AND m.name = ? "
            "WHERE j.state = 'RUNNING' AND m.step = (SELECT MAX(step) FROM job_metrics WHERE job_id = j.id AND name = ?)",
            (TOKENS_METRIC, TOKENS_METRIC),
        )
        tokens: dict[tuple[str, str], float] = {}
        for row in rows:
            # The host as the monitor names it: this machine is 'local', a target goes by its name.
            host = LOCAL if row["executor"] == LOCAL else row["host"] or row["executor"]
            tokens[(row["kind"], host)] = tokens.get((row["kind"], host), 0.0) + float(row["value"])
        # A host that stopped answering drops out rather than repeat its last reading.
        fresh = await self._samples.latest_since(self._clock() - STALE_AFTER_INTERVALS * self._interval_s)
        return _Reading(read=True, states=states, queued=queued, hosts=fresh, tokens=tokens)

    def _families(self, reading: _Reading) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("forge_jobs", "Jobs in the workspace by state.", labels=["state"])
        for state in JobState if reading.read else ():
            jobs.add_metric([state.value], reading.states.get(state.value, 0))
        yield jobs
        queue = GaugeMetricFamily("forge_job_queue_depth", "Queued jobs by admission lane (gpu, cpu, service).",
                                  labels=["lane"])  # fmt: skip
        for lane, count in reading.queued.items():
            queue.add_metric([lane], count)
        yield queue
        for name, help_text, read, divisor in HOST_GAUGES:
            family = GaugeMetricFamily(name, f"{help_text} Latest sample per host.", labels=["host"])
            for host, sample in reading.hosts.items():
                value = read(sample)
                if value is not None:
                    family.add_metric([host], value / divisor)
            yield family
        for name, help_text, read, divisor in GPU_GAUGES:
            family = GaugeMetricFamily(name, f"{help_text} Latest sample per host.", labels=["host", "gpu", "name"])
            for host, sample in reading.hosts.items():
                for gpu in sample.gpus:
                    value = read(gpu)
                    if value is not None:
                        family.add_metric([host, str(gpu.index), gpu.name], value / divisor)
            yield family
        tokens = GaugeMetricFamily("forge_training_tokens_per_second",
                                   "Training throughput of the running jobs, each one's latest tokens_per_s, summed by "
                                   "job kind and host.", labels=["kind", "host"])  # fmt: skip
        for (kind, host), value in sorted(reading.tokens.items()):
            tokens.add_metric([kind, host], value)
        yield tokens
