"""A sweep's charts as PNG: Optuna's own matplotlib visualisations (optimisation history and
parallel coordinates). They draw through pyplot, whose figures are process-wide, so the caller
serialises them (SweepService holds the lock) and each figure is closed once saved."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

DPI = 100


def history_png(study: optuna.Study, title: str) -> bytes:
    from optuna.visualization.matplotlib import plot_optimization_history

    return _render(lambda: plot_optimization_history(study), title)


def parallel_png(study: optuna.Study, title: str) -> bytes:
    from optuna.visualization.matplotlib import plot_parallel_coordinate

    return _render(lambda: plot_parallel_coordinate(study), title)


def _render(plot, title: str) -> bytes:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        ax = plot()
    figure = ax.figure
    try:
        figure.set_size_inches(7.0, 4.0)
        ax.set_title(title, fontsize=10, loc="left")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
        return buffer.getvalue()
    finally:
        plt.close(figure)
