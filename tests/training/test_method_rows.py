"""The rows each method trains on, the same on every backend: KTO's good and bad answers
shuffled together, GRPO's prompts with their references."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.run import labeled_answers, prompts_and_references


def test_kto_takes_each_pair_as_a_good_and_a_bad_answer_shuffled_with_labeled_ones() -> None:
    pairs = [{"prompt": f"p{i}", "chosen": f"good{i}", "rejected": f"bad{i}"} for i in range(20)]
    labeled = [{"prompt": "q", "completion": "fine", "label": True}]
    answers = labeled_answers(pairs + labeled, seed=0)
    assert len(answers) == 41 and labeled[0] in answers
    assert {"prompt": "p3", "completion": "bad3", "label": False} in answers
    labels = [a["label"] for a in answers]
    assert labels != sorted(labels) and labels != sorted(labels, reverse=True)  # mixed, not all good ones first
    assert labeled_answers(pairs, seed=0) == labeled_answers(pairs, seed=0) != labeled_answers(pairs, seed=1)


def test_grpo_samples_after_the_turns_before_the_last_answer_and_checks_against_it() -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"}, {"role": "assistant", "content": "6"}]  # fmt: skip
    opening = [{"role": "assistant", "content": "Hello"}]
    [row] = prompts_and_references([{"messages": chat}, {"messages": opening}])
    assert row == {"prompt": chat[:4], "reference": "6"}
    with pytest.raises(InvalidArguments, match="no chat here has any; give chats that start with a user turn"):
        prompts_and_references([{"messages": opening}])
