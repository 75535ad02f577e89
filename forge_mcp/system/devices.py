"""The devices a system_benchmark measures, from what the caller named."""

from __future__ import annotations

from forge_mcp.errors import InvalidArguments


def resolve_devices(devices: list[str] | None, gpu_slots: int) -> list[str]:
    """'cpu', 'cuda' (every GPU) or 'cuda:N' -> explicit device names; default cpu + every GPU."""
    if devices is None:
        return ["cpu", *(f"cuda:{i}" for i in range(gpu_slots))]
    resolved: list[str] = []
    for device in devices:
        if device == "cpu":
            names = ["cpu"]
        elif device == "cuda":
            if gpu_slots == 0:
                raise InvalidArguments("devices: 'cuda' asked for, but this server has no GPU; use ['cpu']")
            names = [f"cuda:{i}" for i in range(gpu_slots)]
        elif device.startswith("cuda:") and device[5:].isdigit():
            names = [device]
        else:
            raise InvalidArguments(f"devices: {device[:32]!r} is not a device; use 'cpu', 'cuda' or 'cuda:N'")
        resolved.extend(n for n in names if n not in resolved)
    if not resolved:
        raise InvalidArguments("devices: the list is empty; give at least 'cpu'")
    return resolved
