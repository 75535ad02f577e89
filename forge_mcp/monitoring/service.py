"""system_history: a host's sampled load over the last minutes, as numbers and, when asked,
a chart. Reads the store only: the sampler (sampler.py) is what measures."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from forge_mcp.capabilities import ImageAttachment
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.compute.service import LOCAL
from forge_mcp.errors import InvalidArguments
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.sampler import SystemSampler
from forge_mcp.monitoring.samples import HostSample

STALE_AFTER_INTERVALS = 3  # a host whose newest sample is older than this many intervals is not answering


class SystemHistory(BaseModel):
    host: str
    minutes: int
    interval_s: float = Field(description="How often hosts are sampled (monitor_interval_s)")
    samples: list[HostSample] = Field(description="Oldest first")
    thinned: bool = Field(description="True when more samples were taken than max_points; every n-th is shown")
    last_seen_unix_s: float | None = Field(description="The host's newest sample, in the window or not; None: never")
    note: str | None = Field(None, description="Why samples are missing, when they are")
    chart: ImageAttachment | None = None


class MonitoringService:
    def __init__(self, samples: SampleRepository, sampler: SystemSampler, targets: ComputeRepository,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._samples = samples
        self._sampler = sampler
        self._targets = targets
        self._clock = clock

    async def history(self, host: str, minutes: int, max_points: int, chart: bool) -> SystemHistory:
        await self._check_host(host)
        kept_minutes = int(self._sampler.retention_s // 60)
        if minutes > kept_minutes:
            raise InvalidArguments(f"argument 'minutes': samples are kept for {kept_minutes} minutes "
                                   f"(monitor_retention_hours); ask for {kept_minutes} or fewer")  # fmt: skip
        now = self._clock()
        samples = await self._samples.series(host, now - minutes * 60)
        last_seen = samples[-1].unix_time_s if samples else await self._samples.last_seen(host)
        note = self._note(host, last_seen, now)
        image = None
        if chart:
            if not samples:
                raise InvalidArguments(f"chart: nothing to draw: {note}")
            from forge_mcp.monitoring.charts import history_png

            png = await asyncio.to_thread(history_png, f"{host}: the last {minutes} min", samples, now)
            image = ImageAttachment(data_base64=base64.b64encode(png).decode(),
                                    description=f"{host}'s CPU, RAM, disk and GPUs over {minutes} min")  # fmt: skip
        shown = _thinned(samples, max_points)
        return SystemHistory(host=host, minutes=minutes, interval_s=self._sampler.interval_s, samples=shown,
                             thinned=len(shown) < len(samples), last_seen_unix_s=last_seen, note=note,
                             chart=image)  # fmt: skip

    async def _check_host(self, host: str) -> None:
        """InvalidArguments when the host is not monitored at all."""
        if host == LOCAL or await self._targets.get(host) is not None:
            return
        if await self._samples.last_seen(host) is not None:
            return  # a removed target's history stays readable until the retention ends
        names = [LOCAL, *(t.name for t in await self._targets.list())]
        raise InvalidArguments(f"argument 'host': {host!r} is not monitored; give {LOCAL!r} (this machine) or a "
                               f"compute target ({', '.join(map(repr, names))}; compute_list lists them)")  # fmt: skip

    def _note(self, host: str, last_seen: float | None, now: float) -> str | None:
        interval = self._sampler.interval_s
        if last_seen is not None and now - last_seen <= STALE_AFTER_INTERVALS * interval:
            return None
        seen = f"last seen {_when(last_seen, now)}" if last_seen is not None else "never sampled yet"
        failure = self._sampler.unreachable(host)
        if failure is not None:
            return f"{host} did not answer at {_clock_time(failure.at)} ({failure.error}); {seen}"
        if last_seen is None and host == LOCAL:
            return (f"no sample yet: this machine is sampled every {interval:g} s while a server (forge-mcp serve or "
                    "stdio) runs on this workspace; ask again shortly")  # fmt: skip
        if last_seen is None:
            return f"{host}: {seen}; a compute target is sampled once it has been probed (compute_probe)"
        return f"{host}: no sample in the last {STALE_AFTER_INTERVALS * interval:g} s; {seen}"


def _thinned(samples: list[HostSample], max_points: int) -> list[HostSample]:
    """At most max_points, evenly spaced, the newest always kept."""
    if len(samples) <= max_points:
        return samples
    stride = math.ceil(len(samples) / max_points)
    kept = samples[::-1][::stride][::-1]
    return kept[-max_points:]


def _when(at: float, now: float) -> str:
    ago = now - at
    span = f"{ago:.0f} s" if ago < 120 else f"{ago / 60:.0f} min" if ago < 7200 else f"{ago / 3600:.1f} h"
    return f"{_clock_time(at)} ({span} ago)"


def _clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
