"""Running `python -m forge_mcp.compute.ray_probe …` for the server: the probe and the
monitor's samples both join a Ray cluster from a child process (the server never imports
Ray: it starts threads and holds a connection for as long as the process lives)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from forge_mcp.errors import MissingExtra, TargetUnavailable


def run_ray_program(name: str, address: str, args: list[str], timeout_s: float) -> str:
    """The program's stdout; TargetUnavailable saying why when the cluster could not be joined
    or did not answer in `timeout_s`, MissingExtra without the ray extra."""
    if importlib.util.find_spec("ray") is None:
        raise MissingExtra("Ray compute targets (the same Ray version as the cluster's)", "ray")
    try:
        done = subprocess.run([sys.executable, "-m", "forge_mcp.compute.ray_probe", *args], capture_output=True,
                              text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise TargetUnavailable(f"compute target {name!r}: the Ray cluster at {address} did not answer in "
                                f"{timeout_s:.0f} s; check the address (ray status on the head node)") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        last = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "no message")
        raise TargetUnavailable(f"compute target {name!r}: could not join the Ray cluster at {address} "
                                f"({last.strip()[:300]}); check the address (ray status on the head node prints it)")  # fmt: skip
    return done.stdout
