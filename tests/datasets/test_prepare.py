"""Preparation steps: cleaning, and splits that are deterministic per seed and keep
stratified proportions."""

from __future__ import annotations

from collections import Counter

import pytest

from forge_mcp.datasets.prepare import PrepareOptions, assign_splits, clean_text, map_strings
from forge_mcp.errors import InvalidArguments


def test_clean_text_normalises_unicode_and_whitespace() -> None:
    assert clean_text("  Cafe\u0301\u00a0 au\tlait \x07\r\n\n\n\nnext  line ") == "Café au lait\n\nnext line"
    assert clean_text("\x00\x01  ") == ""


def test_map_strings_touches_content_not_roles() -> None:
    row = {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo", "tool_calls": [{"id": " x "}]}]}
    assert map_strings(row, str.strip) == {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"id": " x "}]}]
    }


def test_random_split_is_deterministic_per_seed() -> None:
    keys = [None] * 1000
    options = PrepareOptions(test_fraction=0.1, validation_fraction=0.05, seed=3)
    first, again = assign_splits(keys, options), assign_splits(keys, options)
    other = assign_splits(keys, options.model_copy(update={"seed": 4}))
    assert first == again and first != other
    assert Counter(first) == {"train": 850, "test": 100, "validation": 50}


def test_stratified_split_keeps_each_value_in_proportion() -> None:
    keys = ["billing"] * 600 + ["shipping"] * 300 + ["refund"] * 100
    labels = assign_splits(keys, PrepareOptions(split_method="stratified", split_column="topic", test_fraction=0.2))
    for topic, total in (("billing", 600), ("shipping", 300), ("refund", 100)):
        in_test = sum(1 for k, s in zip(keys, labels, strict=True) if k == topic and s == "test")
        assert in_test == total // 5, topic


def test_temporal_split_puts_the_newest_rows_in_test() -> None:
    keys = [f"2024-01-{day:02d}" for day in range(1, 31)]
    labels = assign_splits(keys, PrepareOptions(split_method="temporal", split_column="date", test_fraction=0.1))
    assert [k for k, s in zip(keys, labels, strict=True) if s == "test"] == ["2024-01-28", "2024-01-29", "2024-01-30"]


def test_split_methods_that_need_a_column_say_so() -> None:
    with pytest.raises(InvalidArguments, match="split_column: a temporal split needs"):
        assign_splits([1, 2], PrepareOptions(split_method="temporal"))
