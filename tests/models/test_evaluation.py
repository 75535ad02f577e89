"""Comparing two evaluations on known numbers: deltas, which side wins each metric (lower
loss and perplexity win), the Markdown table, the summary, the side-by-side answers and
the grouped bar chart."""

from __future__ import annotations

import struct

import pytest

from forge_mcp.models.evaluation import Decoding, Evaluation, chart_png, compare, comparison_table


def evaluation(model: str, loss: float, perplexity: float, metrics: dict[str, float], answers: list[str]) -> Evaluation:
    examples = [{"prompt": f"Greet {n}.", "reference": f"Hello, {n}!", "prediction": a}
                for n, a in zip(("ann", "bob"), answers, strict=True)]  # fmt: skip
    return Evaluation(model=model, dataset_id="greet@v2", split="test", rows=20, loss=loss, perplexity=perplexity,
                      metrics=metrics, decoding=Decoding(max_new_tokens=12), examples=examples)  # fmt: skip


TUNED = evaluation("greeter@v1", 0.25, 1.284, {"exact_match": 0.9, "contains": 0.95, "rouge_l": 0.97, "judge_score": 0.75,
                                              "judge_failures": 1.0}, ["Hello, ann!", "Hello, bob!"])  # fmt: skip
BASE = evaluation("models/tiny", 2.5, 12.182, {"exact_match": 0.0, "contains": 0.95, "rouge_l": 0.4, "json_valid": 1.0,
                                              "judge_failures": 0.0}, ["blue", "Hello, bob! Hello"])  # fmt: skip


def test_the_table_has_b_minus_a_and_the_better_side_per_metric() -> None:
    rows = {r.metric: r for r in comparison_table(TUNED, BASE)}
    assert list(rows) == ["eval_loss", "perplexity", "exact_match", "contains", "rouge_l", "json_valid", "judge_score"]
    assert (rows["eval_loss"].a, rows["eval_loss"].b, rows["eval_loss"].delta, rows["eval_loss"].better) == (0.25, 2.5, 2.25, "a")
    assert (rows["perplexity"].delta, rows["perplexity"].better) == (10.898, "a")  # lower wins
    assert (rows["exact_match"].delta, rows["exact_match"].better) == (-0.9, "a")  # higher wins
    assert (rows["rouge_l"].delta, rows["rouge_l"].better) == (-0.57, "a")
    assert (rows["contains"].delta, rows["contains"].better) == (0.0, "tie")
    # Only one side has it: shown, never ranked. judge_failures is a count, not a quality: left out.
    json_valid = rows["json_valid"]
    assert (json_valid.a, json_valid.b, json_valid.delta, json_valid.better) == (None, 1.0, None, None)
    assert (rows["judge_score"].a, rows["judge_score"].better) == (0.75, None)
    swapped = {r.metric: r.better for r in comparison_table(BASE, TUNED)}
    assert swapped["eval_loss"] == swapped["exact_match"] == "b" and swapped["contains"] == "tie"


def test_the_comparison_reads_as_text_and_shows_the_same_rows_side_by_side() -> None:
    result = compare(TUNED, BASE, chart="runs/job_0/compare.png")
    lines = result.table_text.splitlines()
    assert lines[0] == "| metric | a: greeter@v1 | b: models/tiny | delta (b − a) | better |"
    assert "| eval_loss | 0.25 | 2.5 | +2.25 | a |" in lines
    assert "| perplexity | 1.284 | 12.18 | +10.9 | a |" in lines
    assert "| json_valid | — | 1 | — | — |" in lines
    assert result.summary == ("On greet@v2:test (20 rows), a (greeter@v1) is better on eval_loss, perplexity, exact_match, "
                              "rouge_l; b (models/tiny) on nothing; tied on contains.")  # fmt: skip
    assert result.examples == [
        {"prompt": "Greet ann.", "reference": "Hello, ann!", "a": "Hello, ann!", "b": "blue"},
        {"prompt": "Greet bob.", "reference": "Hello, bob!", "a": "Hello, bob!", "b": "Hello, bob! Hello"},
    ]


def test_the_chart_is_a_png_of_the_metrics_both_sides_have() -> None:
    png = chart_png(compare(TUNED, BASE, chart=None))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert (width, height) == (700, 320)


@pytest.mark.parametrize("metric", ["eval_loss", "perplexity", "final_eval_loss"])
def test_lower_is_better_for_losses(metric: str) -> None:
    a = evaluation("a", 1.0, 2.0, {metric: 1.0} if metric.startswith("final") else {}, ["x", "y"])
    b = evaluation("b", 2.0, 3.0, {metric: 2.0} if metric.startswith("final") else {}, ["x", "y"])
    assert {r.metric: r.better for r in comparison_table(a, b)}[metric] == "a"
