"""Taking one sample: of this machine through psutil (and nvidia-smi), and of a compute
target through a short standard-library program sent to its Python over SSH, which prints
one JSON line (validated here, never evaluated). Both block: callers run them in a thread."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel, ConfigDict

from forge_mcp.monitoring import nvidia_smi
from forge_mcp.monitoring.samples import HostSample

FIRST_WINDOW_S = 0.25  # the first CPU reading has no previous one to compare with: measure this long
REMOTE_CPU_WINDOW_S = 0.5  # the target program is stateless: it measures its own short window

# argv[1]: the folder whose disk is reported (the target's remote_dir, walked up to one that exists).
# Its constants come first, written here as Python literals of numbers and strings.
_PROGRAM_BODY = r'''
import json, os, shutil, subprocess, sys, time

def cpu():
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:9]]
    return sum(fields), fields[3] + fields[4]

found = {}
try:
    total_a, idle_a = cpu()
    time.sleep(WINDOW)
    total_b, idle_b = cpu()
    busy = (total_b - total_a) - (idle_b - idle_a)
    found["cpu_percent"] = round(100.0 * busy / max(total_b - total_a, 1e-9), 1)
except (OSError, ValueError, IndexError):
    pass
try:
    with open("/proc/meminfo") as meminfo:
        fields = dict(line.split(":", 1) for line in meminfo)
    total = int(fields["MemTotal"].split()[0]) * 1024
    found["ram_total_bytes"] = total
    found["ram_used_bytes"] = total - int(fields["MemAvailable"].split()[0]) * 1024
except (OSError, KeyError, ValueError):
    pass
place = os.path.abspath(os.path.expanduser(sys.argv[1]))
while not os.path.exists(place):
    place = os.path.dirname(place)
disk = shutil.disk_usage(place)
found["disk_free_bytes"], found["disk_total_bytes"] = disk.free, disk.total
found["nvidia_smi"] = None
if shutil.which("nvidia-smi"):
    try:
        done = subprocess.run(["nvidia-smi", *QUERY], capture_output=True, text=True, timeout=TIMEOUT)
        found["nvidia_smi"] = done.stdout if done.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
print(json.dumps(found))
'''
SAMPLE_PROGRAM = (
    f"WINDOW = {REMOTE_CPU_WINDOW_S!r}\nQUERY = {list(nvidia_smi.QUERY_ARGS)!r}\nTIMEOUT = {nvidia_smi.TIMEOUT_S!r}\n"
    + _PROGRAM_BODY
)


class CpuMeter:
    """All cores' busy share since the previous reading: with one reading per sample, the
    average over the whole interval rather than a snapshot of the moment. Its own counters,
    not psutil.cpu_percent's, which system_status and anything else in the process share."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def read(self) -> float:
        if self._last is None:
            self._last = _cpu_counters()
            time.sleep(FIRST_WINDOW_S)
        total, idle = _cpu_counters()
        last_total, last_idle = self._last
        self._last = (total, idle)
        elapsed = total - last_total
        return round(min(max(100.0 * (elapsed - (idle - last_idle)) / elapsed, 0.0), 100.0), 1) if elapsed > 0 else 0.0


def _cpu_counters() -> tuple[float, float]:
    """(all time, idle time) in CPU seconds; guest time is already inside user time on Linux."""
    times = psutil.cpu_times()
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total, times.idle + getattr(times, "iowait", 0.0)


def sample_local(meter: CpuMeter, disk_path: Path, at: Callable[[], float]) -> HostSample:
    """This machine now; `at` stamps it (the sampler's clock, the one retention is measured by)."""
    memory = psutil.virtual_memory()
    disk = psutil.disk_usage(str(disk_path))
    return HostSample(
        unix_time_s=at(),
        cpu_percent=meter.read(),
        ram_used_bytes=memory.total - memory.available,
        ram_total_bytes=memory.total,
        disk_free_bytes=disk.free,
        disk_total_bytes=disk.total,
        gpus=nvidia_smi.query_local(),
    )


class _RemoteReading(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cpu_percent: float | None = None
    ram_used_bytes: int | None = None
    ram_total_bytes: int | None = None
    disk_free_bytes: int | None = None
    disk_total_bytes: int | None = None
    nvidia_smi: str | None = None


def parse_remote(stdout: str, at: float) -> HostSample:
    """The program's last JSON line as a sample taken at `at`; ValueError when there is none."""
    reading = _RemoteReading.model_validate(_last_json_line(stdout, "the sampling program"))
    return HostSample(
        unix_time_s=at,
        **reading.model_dump(exclude={"nvidia_smi"}),
        gpus=nvidia_smi.parse_gpus(reading.nvidia_smi) if reading.nvidia_smi else [],
    )


def parse_cluster(stdout: str, at: float) -> HostSample:
    """A Ray cluster as one host, from ray_probe --sample's line: the mean of its nodes' CPU, their
    RAM summed, the workspace's disk as the first node sees it (the same shared storage on every
    node), and every node's GPUs, numbered on in node order. ValueError when it does not parse."""
    nodes = [parse_remote(node["stdout"], at) for node in _last_json_line(stdout, "the Ray sampling program")["nodes"]]
    if not nodes:
        raise ValueError("the cluster has no alive node")
    cpus = [n.cpu_percent for n in nodes if n.cpu_percent is not None]
    gpus = [gpu for node in nodes for gpu in node.gpus]
    return HostSample(
        unix_time_s=at,
        cpu_percent=round(sum(cpus) / len(cpus), 1) if cpus else None,
        ram_used_bytes=_total(n.ram_used_bytes for n in nodes),
        ram_total_bytes=_total(n.ram_total_bytes for n in nodes),
        disk_free_bytes=nodes[0].disk_free_bytes,
        disk_total_bytes=nodes[0].disk_total_bytes,
        gpus=[gpu.model_copy(update={"index": i}) for i, gpu in enumerate(gpus)],
    )


def _total(values: Iterable[int | None]) -> int | None:
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def _last_json_line(stdout: str, program: str) -> Any:
    """A program's answer: its last line that is a JSON object (whatever it logged before)."""
    lines = [line for line in stdout.strip().splitlines() if line.startswith("{")]
    if not lines:
        raise ValueError(f"{program} printed no result")
    return json.loads(lines[-1])
