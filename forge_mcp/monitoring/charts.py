"""A host's sampled load as a PNG (matplotlib's Agg backend, imported on first use): one panel
per quantity, since their scales differ (percent, GiB, °C, W), against minutes before now;
the GPU panels have one line per GPU and appear only where the host has GPUs."""

from __future__ import annotations

import io
from collections.abc import Callable

from forge_mcp.charts import DPI, HEIGHT_PER_SERIES_IN, WIDTH_IN
from forge_mcp.monitoring.samples import GpuSample, HostSample

GIB = 1024**3
Reading = Callable[[GpuSample], float | int | None]
GPU_PANELS: tuple[tuple[str, Reading, float], ...] = (
    ("GPU utilisation (%)", lambda g: g.utilization_percent, 1.0),
    ("GPU memory used (GiB)", lambda g: g.memory_used_bytes, 1 / GIB),
    ("GPU temperature (°C)", lambda g: g.temperature_celsius, 1.0),
    ("GPU power (W)", lambda g: g.power_watts, 1.0),
)


def history_png(title: str, samples: list[HostSample], now: float) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    minutes = [(s.unix_time_s - now) / 60 for s in samples]
    gpus = sorted({(g.index, g.name) for s in samples for g in s.gpus})
    panels = 3 + (len(GPU_PANELS) if gpus else 0)
    figure = Figure(figsize=(WIDTH_IN, HEIGHT_PER_SERIES_IN * panels), dpi=DPI)
    axes = list(figure.subplots(panels, 1, squeeze=False, sharex=True)[:, 0])
    marker = "." if len(samples) < 50 else None

    def line(ax, values: list[float | None], label: str | None = None, style: str = "-") -> None:  # noqa: ANN001
        ax.plot(minutes, [v if v is not None else float("nan") for v in values], style, marker=marker, linewidth=1.5,
                label=label)  # fmt: skip

    cpu, ram, disk = axes[:3]
    line(cpu, [s.cpu_percent for s in samples])
    cpu.set_ylim(0, 100)
    line(ram, [_gib(s.ram_used_bytes) for s in samples], "used")
    line(ram, [_gib(s.ram_total_bytes) for s in samples], "total", "--")
    line(disk, [_gib(s.disk_free_bytes) for s in samples])
    for ax, name in ((cpu, "CPU (%)"), (ram, "RAM (GiB)"), (disk, "Disk free (GiB)")):
        ax.set_title(name, fontsize=10, loc="left")
    for ax, (name, read, scale) in zip(axes[3:], GPU_PANELS, strict=False):
        for index, gpu_name in gpus:
            values = []
            for sample in samples:
                gpu = next((g for g in sample.gpus if g.index == index), None)
                value = read(gpu) if gpu is not None else None
                values.append(value * scale if value is not None else None)
            line(ax, values, f"{index}: {gpu_name}")
        ax.set_title(name, fontsize=10, loc="left")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if len(ax.get_lines()) > 1:
            ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes before now", fontsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _gib(value: int | None) -> float | None:
    return value / GIB if value is not None else None
