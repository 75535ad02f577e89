"""Table cells the benchmarks that alternate rounds print the same way: a row of per-round
ratios, load averages or seconds."""

from __future__ import annotations


def ratios(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}×" for v in values)


def loads(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def seconds(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) + " s"
