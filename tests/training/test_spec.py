"""The training spec: recipes are valid data, and a bad spec gets one error naming every problem."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.training.spec import list_recipes, resolve_spec


def test_every_recipe_is_a_valid_partial_spec() -> None:
    assert {"sft-lora", "sft-lora-tiny", "qlora", "dpo-lora", "cpt-lora", "orpo-lora", "kto-lora", "reward-lora",
            "grpo-lora"} <= set(list_recipes())  # fmt: skip
    for name in list_recipes():
        spec = resolve_spec({"base_model": "models/tiny", "dataset": "d"}, name)
        assert spec.base_model == "models/tiny"


def test_the_callers_fields_override_the_recipe() -> None:
    spec = resolve_spec({"base_model": "m", "dataset": "d", "max_steps": 7}, "sft-lora-tiny")
    assert spec.max_steps == 7 and spec.lora_r == 8


def test_a_bad_spec_lists_every_problem_at_once() -> None:
    with pytest.raises(InvalidArguments) as caught:
        resolve_spec({"method": "rlhf", "learning_rate": -1, "lora_rank": 8, "dataset": "d", "batch_size": 0})
    message = caught.value.message
    for expected in ("'method'", "'learning_rate'", "'lora_rank' is not a field of the training spec",
                     "'base_model' is required", "'batch_size'"):  # fmt: skip
        assert expected in message, message


def test_inconsistent_fields_are_named() -> None:
    with pytest.raises(InvalidArguments, match="general_dataset: data mixing is for method cpt"):
        resolve_spec({"base_model": "m", "dataset": "d", "general_dataset": "g"})
    with pytest.raises(InvalidArguments, match="eval_steps: give eval_split"):
        resolve_spec({"base_model": "m", "dataset": "d", "eval_steps": 5})


def test_an_unknown_recipe_names_the_recipes() -> None:
    with pytest.raises(NotFound, match="sft-lora"):
        resolve_spec({"base_model": "m", "dataset": "d"}, "nope")


def test_grpo_needs_rewards_and_only_grpo_takes_them() -> None:
    with pytest.raises(InvalidArguments, match="rewards: grpo needs at least one reward"):
        resolve_spec({"base_model": "m", "dataset": "d", "method": "grpo"})
    with pytest.raises(InvalidArguments, match="rewards: reward functions are for method grpo"):
        resolve_spec({"base_model": "m", "dataset": "d", "rewards": [{"name": "exact_match"}]})
    with pytest.raises(InvalidArguments, match="beta: sft has no beta"):
        resolve_spec({"base_model": "m", "dataset": "d", "beta": 0.2})
    with pytest.raises(InvalidArguments, match="beta: 0 leaves orpo without its preference term"):
        resolve_spec({"base_model": "m", "dataset": "d", "method": "orpo", "beta": 0})


def test_a_reward_outside_the_allowlist_is_refused_naming_the_allowlist() -> None:
    with pytest.raises(InvalidArguments) as caught:
        resolve_spec({"base_model": "m", "dataset": "d", "method": "grpo", "rewards": [{"name": "python", "code": "1"}]})
    message = caught.value.message
    assert "'python' is not a reward; choose from exact_match, contains, regex, json_valid, length_penalty, llm_judge" in message
    assert "'code' is not a field" in message or "code" in message, message


def test_each_methods_beta_defaults_to_its_own() -> None:
    def beta(method: str, **fields: object) -> float:
        extra = {"rewards": [{"name": "exact_match"}]} if method == "grpo" else {}
        return resolve_spec({"base_model": "m", "dataset": "d", "method": method, **extra, **fields}).preference_beta

    assert beta("dpo") == beta("orpo") == beta("kto") == 0.1 and beta("grpo") == 0.0
    assert beta("dpo", dpo_beta=0.3) == 0.3 and beta("dpo", dpo_beta=0.3, beta=0.5) == 0.5
