"""Kinds: every source layout normalises to its canonical form; detection says how sure it is."""

from __future__ import annotations

import pytest

from forge_mcp.datasets.kinds import DatasetKind, InvalidRow, detect, to_canonical

CHAT = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
CASES = [
    (DatasetKind.MESSAGES, CHAT, CHAT),
    (
        DatasetKind.MESSAGES,
        {"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function",
             "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "content": "sunny", "tool_call_id": "c1"},
            {"role": "assistant", "content": "Sunny."},
        ]},  # fmt: skip
        None,
    ),
    (
        DatasetKind.SHAREGPT,
        {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
        CHAT,
    ),
    (DatasetKind.ALPACA, {"instruction": "Hi", "input": "", "output": "Hello!"}, CHAT),
    (
        DatasetKind.ALPACA,
        {"instruction": "Translate", "input": "bonjour", "output": "hello"},
        {"messages": [{"role": "user", "content": "Translate\n\nbonjour"}, {"role": "assistant", "content": "hello"}]},
    ),
    (DatasetKind.COMPLETION, {"prompt": "Hi", "completion": "Hello!"}, CHAT),
    (
        DatasetKind.PREFERENCE,
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
        {"prompt": "2+2?", "chosen": "4", "rejected": "5"},
    ),
    (
        DatasetKind.PREFERENCE,
        {"chosen": CHAT["messages"], "rejected": [CHAT["messages"][0], {"role": "assistant", "content": "Go away"}]},
        None,
    ),
    (DatasetKind.TEXT, {"text": "Once upon a time."}, {"text": "Once upon a time."}),
]


@pytest.mark.parametrize(("kind", "row", "expected"), CASES)
def test_every_layout_normalises_to_its_canonical_form(kind: DatasetKind, row: dict, expected: dict | None) -> None:
    canonical = to_canonical(row, kind)
    if expected is not None:
        assert canonical == expected
    canonical_kind = DatasetKind.PREFERENCE if kind is DatasetKind.PREFERENCE else (
        DatasetKind.TEXT if kind is DatasetKind.TEXT else DatasetKind.MESSAGES)  # fmt: skip
    assert to_canonical(canonical, canonical_kind) == canonical  # canonical is a fixed point


@pytest.mark.parametrize(
    ("kind", "row", "field"),
    [
        (DatasetKind.MESSAGES, {"messages": []}, "'messages' must be a non-empty list"),
        (DatasetKind.MESSAGES, {"messages": [{"role": "bot", "content": "x"}]}, "'messages[0].role'"),
        (DatasetKind.MESSAGES, {"messages": [{"role": "user", "content": "x"}]}, "no assistant turn"),
        (DatasetKind.MESSAGES, {"messages": [{"role": "user", "content": 3}]}, "'messages[0].content' must be a string"),
        (DatasetKind.SHAREGPT, {"conversations": [{"from": "alien", "value": "x"}]}, "'conversations[0]'"),
        (DatasetKind.ALPACA, {"instruction": "x"}, "'output' is missing"),
        (DatasetKind.PREFERENCE, {"prompt": "x", "chosen": 1, "rejected": "y"}, "'chosen' must be a string or a list"),
        (DatasetKind.TEXT, {"text": "   "}, "'text' is empty"),
    ],
)
def test_invalid_rows_name_the_field(kind: DatasetKind, row: dict, field: str) -> None:
    with pytest.raises(InvalidRow, match=field.replace("[", "\\[").replace("]", "\\]").replace("(", "\\(")):
        to_canonical(row, kind)


def test_detection_reports_kind_and_confidence() -> None:
    rows = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(9)] + [{"oops": 1}]
    detection = detect(rows)
    assert detection.kind is DatasetKind.ALPACA
    assert detection.confidence == 0.9 and not detection.ambiguous
    assert detection.scores["alpaca"] == 0.9 and detection.scores["messages"] == 0.0


def test_detection_flags_ambiguity_and_prefers_the_specific_kind() -> None:
    rows = [{**CHAT, "text": "the same chat, flattened"} for _ in range(5)]
    detection = detect(rows)
    assert detection.kind is DatasetKind.MESSAGES and detection.ambiguous


def test_preference_is_not_mistaken_for_completion() -> None:
    detection = detect([{"prompt": "p", "chosen": "a", "rejected": "b"}] * 3)
    assert detection.kind is DatasetKind.PREFERENCE and not detection.ambiguous


def test_nothing_fits() -> None:
    detection = detect([{"question": "q", "answer": "a"}])
    assert detection.kind is None and detection.confidence == 0.0


def test_labeled_answers_are_told_from_plain_completions_by_their_true_or_false_label() -> None:
    rows = [{"prompt": "p", "completion": "a", "label": True}, {"prompt": "p", "completion": "b", "label": False}]
    detection = detect(rows)
    assert detection.kind is DatasetKind.LABELED and detection.scores["completion"] == 1.0
    assert to_canonical(rows[1], DatasetKind.LABELED) == rows[1]
    assert detect([{"prompt": "p", "completion": "a", "label": "good"}]).kind is DatasetKind.COMPLETION
    with pytest.raises(InvalidRow, match="'label' must be true"):
        to_canonical({"prompt": "p", "completion": "a", "label": 1}, DatasetKind.LABELED)
