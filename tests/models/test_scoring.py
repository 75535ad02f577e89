"""Generation metrics on pairs with known answers."""

from __future__ import annotations

import pytest

from forge_mcp.models.scoring import contains, exact_match, json_valid, rouge_l, score


def test_exact_match_and_contains_ignore_case_and_spacing() -> None:
    assert exact_match("  Hello,   World! ", "hello, world!") == 1.0
    assert exact_match("Hello, World", "Hello, World!") == 0.0
    assert contains("Sure: Hello, ann7! Bye", "hello, ann7!") == 1.0


@pytest.mark.parametrize(("prediction", "reference", "expected"), [
    ("the cat sat on the mat", "the cat sat on the mat", 1.0),
    ("the cat on the mat", "the cat sat on the mat", 2 * (5 / 5) * (5 / 6) / ((5 / 5) + (5 / 6))),
    ("a b c", "x y z", 0.0),
    ("", "", 1.0),
    ("", "a", 0.0),
])  # fmt: skip
def test_rouge_l_is_the_f1_of_the_longest_common_subsequence(prediction: str, reference: str, expected: float) -> None:
    assert rouge_l(prediction, reference) == pytest.approx(expected)


def test_json_validity_is_reported_only_for_json_references() -> None:
    assert json_valid('{"a": 1}') == 1.0 and json_valid("{a: 1}") == 0.0
    assert score(['{"a": 1}', "nope"], ['{"a": 1}', '{"b": 2}'])["json_valid"] == 0.5
    assert "json_valid" not in score(["hi"], ["hello"])
    assert score(["Hello, ann!", "Hi"], ["hello, ann!", "Hello, bo!"]) == {"exact_match": 0.5, "contains": 0.5, "rouge_l": 0.5}
