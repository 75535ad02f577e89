"""Promotion gates: thresholds, "beats production" in the right direction per metric, and
malformed gates refused with the fix."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.models.gate import check_gate


def test_thresholds_pass_and_fail_with_the_numbers() -> None:
    metrics = {"exact_match": 0.82, "final_eval_loss": 2.0}
    assert check_gate({"exact_match": ">= 0.8", "final_eval_loss": "< 2.5"}, metrics, None) == []
    assert check_gate({"exact_match": "> 0.9"}, metrics, None) == ["exact_match is 0.82, the gate wants > 0.9"]
    assert check_gate({"rouge_l": ">= 0.5"}, metrics, None) == [
        "rouge_l: this version has no such metric (model_evaluate records them)"
    ]


def test_beats_production_knows_lower_losses_and_higher_scores_are_better() -> None:
    mine, theirs = {"final_eval_loss": 2.0, "exact_match": 0.7}, {"final_eval_loss": 2.5, "exact_match": 0.8}
    assert check_gate({"beats_production": "final_eval_loss"}, mine, theirs) == []
    assert check_gate({"beats_production": "exact_match"}, mine, theirs) == [
        "beats_production: exact_match is 0.7 here and 0.8 in production"
    ]
    assert check_gate({"beats_production": "exact_match"}, mine, None) == []  # the first production passes


@pytest.mark.parametrize("condition", ["at least 0.8", ">= high", "=> 0.8", ""])
def test_a_malformed_condition_says_how_to_write_one(condition: str) -> None:
    with pytest.raises(InvalidArguments, match="gate.exact_match: write a condition like '>= 0.8'"):
        check_gate({"exact_match": condition}, {"exact_match": 1.0}, None)
