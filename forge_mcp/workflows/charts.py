"""A workflow's DAG as a PNG for people: one box per step (its name, tool and state), in
columns by execution level, an arrow per dependency that no other implies, coloured by
state. matplotlib's object API (no pyplot), so drawing needs no process-wide lock."""

from __future__ import annotations

import io
from collections.abc import Mapping

from forge_mcp.workflows.graph import StepGraph

FILL = {"pending": "#eeeeee", "running": "#fff3c4", "succeeded": "#c8f0c8", "failed": "#f6c6c6",
        "skipped": "#e4e4f4", "canceled": "#dddddd"}  # fmt: skip
EDGE = {"pending": "#999999", "running": "#c9a100", "succeeded": "#2e8b2e", "failed": "#b22222",
        "skipped": "#7777aa", "canceled": "#555555"}  # fmt: skip
BOX_W, BOX_H, COLUMN_W, ROW_H, DPI = 1.7, 0.62, 2.3, 0.95, 100


def dag_png(title: str, graph: StepGraph, tools: Mapping[str, str], states: Mapping[str, str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyBboxPatch

    levels = graph.levels()
    rows = max(len(level) for level in levels)
    where: dict[str, tuple[float, float]] = {}
    for x, level in enumerate(levels):
        for y, name in enumerate(level):
            # Centre each column vertically, so a lone step sits beside the middle of a wide level.
            where[name] = (x * COLUMN_W, -(y + (rows - len(level)) / 2) * ROW_H)
    width, height = max(4.0, len(levels) * COLUMN_W + 0.6), max(2.0, rows * ROW_H + 0.9)
    figure = Figure(figsize=(width, height), dpi=DPI)
    ax = figure.add_axes((0, 0, 1, 1))
    ax.set_xlim(-BOX_W / 2 - 0.3, (len(levels) - 1) * COLUMN_W + BOX_W / 2 + 0.3)
    ax.set_ylim(-(rows - 1) * ROW_H - BOX_H / 2 - 0.3, BOX_H / 2 + 0.55)
    ax.axis("off")
    ax.text(-BOX_W / 2 - 0.2, BOX_H / 2 + 0.3, title, fontsize=10, ha="left", va="center")
    for name in graph.order:
        for need in graph.drawn_needs(name):
            (x1, y1), (x2, y2) = where[need], where[name]
            ax.annotate("", xy=(x2 - BOX_W / 2, y2), xytext=(x1 + BOX_W / 2, y1),
                        arrowprops={"arrowstyle": "-|>", "color": "#666666", "lw": 1.0})  # fmt: skip
    for name, (x, y) in where.items():
        state = states.get(name, "pending")
        box = FancyBboxPatch((x - BOX_W / 2, y - BOX_H / 2), BOX_W, BOX_H, boxstyle="round,pad=0.02,rounding_size=0.08",
                             facecolor=FILL.get(state, "#ffffff"), edgecolor=EDGE.get(state, "#000000"), linewidth=1.4)  # fmt: skip
        ax.add_patch(box)
        ax.text(x, y + 0.13, name, fontsize=8, ha="center", va="center", weight="bold")
        ax.text(x, y - 0.13, f"{tools.get(name, '')} · {state}", fontsize=6.5, ha="center", va="center", color="#333333")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
