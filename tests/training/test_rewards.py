"""GRPO's rewards: named from an allowlist with data for parameters, each scoring a sampled
answer against its reference, logged under its own name."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from forge_mcp.models.judge import Grade
from forge_mcp.training.rewards import RewardSpec, reward_functions

CHAT = [[{"role": "assistant", "content": " The sky is  BLUE. "}], [{"role": "assistant", "content": "It is red."}]]
REFERENCE = ["The sky is blue.", "The sky is blue."]


def scores(**spec: object) -> list[float | None]:
    [function] = reward_functions([RewardSpec(**spec)])
    return function(prompts=[[], []], completions=CHAT, reference=REFERENCE)


def test_exact_match_and_contains_ignore_case_and_spacing() -> None:
    assert scores(name="exact_match") == [1.0, 0.0]
    assert scores(name="contains") == [1.0, 0.0]


def test_regex_extracts_the_answer_from_both_sides_or_checks_the_format() -> None:
    assert scores(name="regex", pattern=r"is\s+(\w+)\.") == [1.0, 0.0]  # the colour found in each, compared
    assert scores(name="regex", pattern=r"^It is") == [0.0, 1.0]  # no group: the format alone


def test_json_validity_and_a_length_penalty() -> None:
    [valid] = reward_functions([RewardSpec(name="json_valid")])
    answers = ['{"a": 1}', "```json\n[1, 2]\n```", "{a: 1}"]
    assert valid(completions=answers, reference=["", "", ""]) == [1.0, 1.0, 0.0]
    [penalty] = reward_functions([RewardSpec(name="length_penalty", max_chars=10)])
    assert penalty(completions=["short", "x" * 15, "x" * 40], reference=["", "", ""]) == [0.0, -0.5, -1.0]


def test_each_function_is_named_for_its_log_and_a_repeated_name_is_numbered() -> None:
    functions = reward_functions([RewardSpec(name="exact_match"), RewardSpec(name="contains"), RewardSpec(name="contains")])
    assert [f.__name__ for f in functions] == ["exact_match", "contains", "contains_2"]


def test_the_llm_judge_grades_against_the_reference_through_the_judge_it_is_given() -> None:
    asked = []

    class Judge:
        def grade(self, conversation: list, reference: str, prediction: str) -> Grade:
            asked.append((conversation, reference, prediction))
            return Grade(5.0 if "blue" in prediction.lower() else None, "")

    spec = RewardSpec(name="llm_judge", judge_url="http://127.0.0.1:9/v1", judge_model="m")
    [judged] = reward_functions([spec], judge_for=lambda reward: Judge())
    prompt = [{"role": "user", "content": "What colour is the sky?"}]
    assert judged(prompts=[prompt, prompt], completions=CHAT, reference=REFERENCE) == [1.0, None]  # a failed grade is no reward
    assert asked[0][0] == prompt and asked[0][1] == REFERENCE[0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "exec"}, "'exec' is not a reward; choose from exact_match"),
        ({"name": "regex"}, "regex needs pattern"),
        ({"name": "regex", "pattern": "(unclosed"}, "pattern: not a regular expression"),
        ({"name": "regex", "pattern": "(a)(b)"}, "at most one capture group"),
        ({"name": "length_penalty"}, "length_penalty needs max_chars"),
        ({"name": "llm_judge", "judge_url": "http://127.0.0.1:9/v1"}, "llm_judge needs judge_model"),
        ({"name": "exact_match", "pattern": "x"}, "pattern: not used by exact_match"),
        ({"name": "exact_match", "weight": 0}, "weight: 0 turns the reward off"),
    ],
)
def test_a_bad_reward_is_refused_naming_the_fix(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RewardSpec(**spec)
