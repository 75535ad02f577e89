"""Charts as PNG (matplotlib's Agg backend, imported on first use): job metric series,
dataset length histograms."""

from __future__ import annotations

import io

from forge_mcp.jobs.models import MetricSeries

WIDTH_IN, HEIGHT_PER_SERIES_IN, DPI = 7.0, 2.2, 100


def line_chart_png(title: str, series: list[MetricSeries]) -> bytes:
    """One panel per series (their scales differ: loss vs learning rate vs tokens/s)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_PER_SERIES_IN * len(series)), dpi=DPI)
    axes = figure.subplots(len(series), 1, squeeze=False)[:, 0]
    for ax, one in zip(axes, series, strict=True):
        steps = [p.step for p in one.points]
        values = [p.value for p in one.points]
        ax.plot(steps, values, marker="." if len(steps) < 50 else None, linewidth=1.5)
        ax.set_title(one.name, fontsize=10, loc="left")
        ax.set_xlabel("step", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def histogram_png(title: str, values: list[int], unit: str, bins: int = 40) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, 3.0), dpi=DPI)
    ax = figure.subplots()
    ax.hist(values, bins=bins)
    ax.set_title(title, fontsize=10, loc="left")
    ax.set_xlabel(unit, fontsize=8)
    ax.set_ylabel("rows", fontsize=8)
    ax.grid(True, alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
