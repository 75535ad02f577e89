"""The training spec: recipes are valid data, and a bad spec gets one error naming every problem."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.training.spec import list_recipes, resolve_spec


def test_every_recipe_is_a_valid_partial_spec() -> None:
    assert {"sft-lora", "sft-lora-tiny", "qlora", "dpo-lora", "cpt-lora"} <= set(list_recipes())
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
