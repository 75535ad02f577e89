"""Where a training plan would run: this machine (measured now) or a compute target (as its
last probe found it). The plan's device, dtype, process count and memory fit come from this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from forge_mcp.hardware.probe import probe_hardware
from forge_mcp.jobs.constants import LOCAL_TARGET
from forge_mcp.training.plan import mlx_on_metal


@dataclass(frozen=True)
class Machine:
    name: str  # "local", or the compute target's name
    gpu_memory_gib: tuple[float | None, ...]  # one per GPU; None: not known (a Ray cluster's)
    bf16: bool  # its GPUs do bfloat16 (compute capability 8.0 and newer)
    memory_gib: float  # host memory a CPU run may use
    mlx_metal: bool
    basis: str  # how these figures were read, for the plan's placement notes

    @property
    def gpus(self) -> int:
        return len(self.gpu_memory_gib)


def this_machine(root: Path) -> Machine:
    hardware = probe_hardware(root)
    return Machine(
        name=LOCAL_TARGET,
        gpu_memory_gib=tuple(g.memory_total_gib for g in hardware.gpus),
        bf16=any(_bf16(g.compute_capability) for g in hardware.gpus),
        memory_gib=psutil.virtual_memory().available / 1024**3,
        mlx_metal=mlx_on_metal() and hardware.mlx.can_run,
        basis="this machine, measured now (free RAM)",
    )


def target_machine(name: str, kind: str, probe: dict[str, Any] | None) -> Machine | None:
    """None when the target was never probed (nothing to plan against)."""
    if not probe:
        return None
    if kind == "ray":
        nodes = [n for n in probe.get("nodes") or [] if n.get("alive")]
        return Machine(
            name=name,
            gpu_memory_gib=(None,) * int(probe.get("gpu_count") or 0),
            bf16=False,
            # A task runs on one node: the largest node's memory is the most one job can have.
            memory_gib=max((float(n.get("memory_gb") or 0) for n in nodes), default=0.0),
            mlx_metal=False,
            basis="a Ray cluster's last probe (GPU memory not reported; the largest node's memory)",
        )
    gpus = probe.get("gpus") or []
    return Machine(
        name=name,
        gpu_memory_gib=tuple(float(g["memory_gb"]) for g in gpus),
        bf16=all(_bf16(g.get("compute_capability")) for g in gpus) if gpus else False,
        memory_gib=float(probe.get("ram_gb") or 0),
        mlx_metal=False,
        basis="its last compute_probe (total RAM)",
    )


def _bf16(capability: str | None) -> bool:
    try:
        return capability is not None and float(capability) >= 8.0
    except ValueError:
        return False
