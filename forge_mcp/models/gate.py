"""Promotion gates: conditions a version's metrics must meet before it moves up a stage.

    {"exact_match": ">= 0.8", "final_eval_loss": "< 2.5"}     thresholds
    {"beats_production": "final_eval_loss"}                     better than the current production
Metrics whose names mention loss or perplexity are better when lower; the rest when higher.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from forge_mcp.errors import InvalidArguments

_CONDITION = re.compile(r"^\s*(>=|<=|>|<|==)\s*(-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)\s*$")
_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq,
}  # fmt: skip
BEATS_PRODUCTION = "beats_production"


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or "perplexity" in metric


def check_gate(gate: Mapping[str, str], metrics: Mapping[str, Any], production: Mapping[str, Any] | None) -> list[str]:
    """Why the gate refuses (empty when it passes). Malformed gates are refused up front."""
    failures = []
    for metric, condition in gate.items():
        if metric == BEATS_PRODUCTION:
            failures += _beats(condition, metrics, production)
            continue
        match = _CONDITION.match(condition) if isinstance(condition, str) else None
        if match is None:
            raise InvalidArguments(f"gate.{metric}: write a condition like '>= 0.8' (>=, <=, >, <, ==)")
        value = metrics.get(metric)
        if not isinstance(value, int | float):
            failures.append(f"{metric}: this version has no such metric (model_evaluate records them)")
        elif not _OPERATORS[match[1]](float(value), float(match[2])):
            failures.append(f"{metric} is {value:g}, the gate wants {match[1]} {match[2]}")
    return failures


def _beats(metric: Any, metrics: Mapping[str, Any], production: Mapping[str, Any] | None) -> list[str]:
    if not isinstance(metric, str):
        raise InvalidArguments("gate.beats_production: name the metric to compare, e.g. 'final_eval_loss'")
    if production is None:
        return []  # nothing in production yet: the first one passes
    mine, theirs = metrics.get(metric), production.get(metric)
    if not isinstance(mine, int | float) or not isinstance(theirs, int | float):
        return [f"beats_production: {metric} is missing on this version or on production"]
    better = mine < theirs if lower_is_better(metric) else mine > theirs
    return [] if better else [f"beats_production: {metric} is {mine:g} here and {theirs:g} in production"]
