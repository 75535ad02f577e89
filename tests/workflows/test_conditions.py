"""A step's `when`: the grammar, its values and its refusals. Parsed and walked here, never eval'd."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.workflows.conditions import Condition, ConditionError

SCOPE = {"inputs": {"promote": True, "floor": 0.3, "stage": "staging"},
         "compare": {"a": {"metrics": {"exact_match": 0.8}}, "b": {"metrics": {"exact_match": 0.1}}},
         "sweep": {"trials": [{"value": 4.2}]}}  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [
    ("${compare.a.metrics.exact_match} > ${compare.b.metrics.exact_match}", True),
    ("compare.a.metrics.exact_match >= inputs.floor and inputs.promote", True),
    ("not inputs.promote or compare.b.metrics.exact_match > 0.5", False),
    ("inputs.stage == 'staging'", True),
    ('inputs.stage != "production"', True),
    ("sweep.trials[0].value < 5", True),
    ("(inputs.floor > 1 or inputs.promote) and not (inputs.stage == 'x')", True),
    ("missing.field == null", True),  # a step that did not run reads as null
    ("true", True),
    ("1e-3 < 0.01", True),
])  # fmt: skip
def test_conditions_evaluate_over_inputs_and_step_results(text: str, expected: bool) -> None:
    assert Condition.parse(text).evaluate(SCOPE) is expected


@pytest.mark.parametrize(("text", "fragment"), [
    ("", "empty"),
    ("inputs.floor >", "ends too early"),
    ("(inputs.promote", "not closed"),
    ("inputs.floor > 1 1", "unexpected"),
    ("__import__('os')", "cannot read"),
    ("inputs.floor + 1 > 2", "cannot read"),
    ("inputs.promote and > 1", "expected a value"),
])  # fmt: skip
def test_a_condition_that_does_not_parse_says_why(text: str, fragment: str) -> None:
    with pytest.raises(InvalidArguments, match=fragment):
        Condition.parse(text)


@pytest.mark.parametrize(("text", "fragment"), [
    ("inputs.stage > 1", "compares numbers with numbers or text with text"),
    ("inputs.floor", "not true or false"),
    ("inputs.floor and inputs.promote", "take true or false"),
])  # fmt: skip
def test_a_condition_over_values_of_the_wrong_type_is_an_error_not_a_guess(text: str, fragment: str) -> None:
    with pytest.raises(ConditionError, match=fragment):
        Condition.parse(text).evaluate(SCOPE)


def test_references_are_listed_for_validation() -> None:
    heads = [p.head for p in Condition.parse("${train.job_id} != null and inputs.promote").references()]
    assert heads == ["train", "inputs"]
