"""NVIDIA GPUs as `nvidia-smi --query-gpu` reports them, on this machine or (inside the
sampling program) on a compute target: the same query and the same parser for both. The
output is parsed as CSV, never evaluated; a field the board does not support ("[N/A]",
"[Not Supported]") becomes None."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

from forge_mcp.monitoring.samples import GpuSample

QUERY_FIELDS = ("index", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu", "power.draw")
QUERY_ARGS = (f"--query-gpu={','.join(QUERY_FIELDS)}", "--format=csv,noheader,nounits")
TIMEOUT_S = 10.0
MIB = 1024**2


def query_local() -> list[GpuSample]:
    """This machine's GPUs; an empty list without nvidia-smi or when it fails (no driver
    loaded, a GPU fallen off the bus): the host's other numbers are still worth recording."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return []
    try:
        done = subprocess.run([command, *QUERY_ARGS], capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return parse_gpus(done.stdout) if done.returncode == 0 else []


def parse_gpus(text: str) -> list[GpuSample]:
    """Rows of QUERY_FIELDS, units left off (MiB, %, °C, W). Lines that do not have every
    field, or whose index is not a number, are skipped (a driver warning printed first)."""
    gpus = []
    for row in csv.reader(io.StringIO(text), skipinitialspace=True):
        if len(row) != len(QUERY_FIELDS) or not row[0].strip().isdigit():
            continue
        index, name, util, used, total, temperature, power = (cell.strip() for cell in row)
        gpus.append(
            GpuSample(
                index=int(index),
                name=name,
                utilization_percent=_number(util),
                memory_used_bytes=_mib(used),
                memory_total_bytes=_mib(total),
                temperature_celsius=_number(temperature),
                power_watts=_number(power),
            )
        )
    return gpus


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:  # [N/A], [Not Supported], empty
        return None


def _mib(cell: str) -> int | None:
    value = _number(cell)
    return round(value * MIB) if value is not None else None
