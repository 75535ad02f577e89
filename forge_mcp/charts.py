"""Charts as PNG (matplotlib's Agg backend, imported on first use): job metric series,
dataset length histograms, two models' metrics side by side."""

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


def grouped_bar_png(title: str, labels: tuple[str, str], values: dict[str, tuple[float, float]]) -> bytes:
    """Two bars per metric (a and b). Scores in 0..1 share one panel; a metric on another
    scale (loss, perplexity) gets a panel of its own, so no bar dwarfs the others."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    scores = [m for m, pair in values.items() if all(0.0 <= v <= 1.0 for v in pair) and "loss" not in m]
    panels = [[m] for m in values if m not in scores] + ([scores] if scores else [])
    figure = Figure(figsize=(WIDTH_IN, 3.2), dpi=DPI)
    axes = figure.subplots(1, len(panels), squeeze=False, width_ratios=[max(len(p), 1) for p in panels])[0]
    width = 0.38
    for ax, metrics in zip(axes, panels, strict=True):
        for offset, side, colour in ((-width / 2, 0, "tab:blue"), (width / 2, 1, "tab:orange")):
            heights = [values[m][side] for m in metrics]
            positions = [i + offset for i in range(len(metrics))]
            ax.bar(positions, heights, width, label=labels[side], color=colour)
        ax.set_xticks(range(len(metrics)), metrics, fontsize=8, rotation=20 if len(metrics) > 3 else 0)
        ax.tick_params(labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
        if metrics is scores:
            ax.set_ylim(0, 1.05)
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncols=2, fontsize=8, frameon=False)
    figure.suptitle(title, fontsize=11)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
