"""A sweep's search space and settings, checked before anything runs: each refusal names the
field and the way out; the edges of a space are what train_plan is asked about."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.sweeps.request import SweepConfig, list_sweep_configs, load_sweep_config, merge, settle
from forge_mcp.sweeps.space import SearchSpace

LR = {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({}, "space: give at least one field to search"),
        ({"learning_rte": LR}, "space.learning_rte: not a training spec field; searchable fields are"),
        ({"base_model": {"type": "categorical", "choices": ["a", "b"]}}, "space.base_model: fixed for a whole sweep"),
        ({"learning_rate": {**LR, "low": 1e-2, "high": 1e-5}}, "'space.learning_rate.float': Value error, low must be below high"),
        ({"learning_rate": {**LR, "low": 0.0}}, "a log range needs low > 0"),
        ({"lora_r": {"type": "categorical", "choices": []}}, "'space.lora_r.categorical.choices': List should have at least 1 item"),
        ({"lora_r": {"type": "int", "low": 8, "high": 4}}, "'space.lora_r.int': Value error, low must be below high"),
        ({"lora_r": {"type": "integer", "low": 4, "high": 8}}, "'space.lora_r': Input tag 'integer' found"),
        ({"lora_r": {"type": "int", "low": 4, "high": 8, "stride": 2}}, "'space.lora_r.int.stride' is not a key"),
        ({"lora_r": {"type": "categorical", "choices": [8, 8]}}, "choices must be distinct"),
    ],
)
def test_a_bad_space_is_refused_naming_the_field(space: dict, message: str) -> None:
    with pytest.raises(InvalidArguments) as refused:
        SearchSpace.parse(space)
    assert message in refused.value.message, refused.value.message


def test_the_edges_are_every_parameter_low_high_and_each_edge_alone() -> None:
    space = SearchSpace.parse({"learning_rate": LR, "lora_r": {"type": "int", "low": 4, "high": 18, "step": 4},
                               "lora_target_modules": {"type": "categorical", "choices": ["all-linear", ["q_proj"]]}})  # fmt: skip
    edges = dict(space.edge_specs({"dataset": "d"}))
    assert edges["learning_rate=1e-05, lora_r=4, lora_target_modules='all-linear'"]["dataset"] == "d"
    assert edges["learning_rate=0.01, lora_r=16, lora_target_modules=['q_proj']"]["lora_r"] == 16  # 18 is off the step
    assert edges["lora_r=16"] == {"dataset": "d", "learning_rate": 1e-5, "lora_r": 16, "lora_target_modules": "all-linear"}
    assert edges["lora_target_modules=['q_proj']"]["lora_target_modules"] == ["q_proj"]


def test_a_grid_needs_choices_or_int_ranges_and_caps_n_trials_at_its_size() -> None:
    with pytest.raises(InvalidArguments, match="space.learning_rate: the grid sampler needs choices or an int range"):
        SearchSpace.parse({"learning_rate": LR}).grid()
    space = SearchSpace.parse({"lora_r": {"type": "int", "low": 4, "high": 8, "step": 4}, "dpo_beta": {"type": "categorical",
                                                                                                     "choices": [0.1, 0.3, 0.5]}})  # fmt: skip
    assert space.grid_size() == 6
    settings = settle({"space": {}, "sampler": "grid", "n_trials": 50}, {"eval_steps": 5}, space.grid_size())
    assert settings.n_trials == 6


def test_defaults_follow_the_objective() -> None:
    loss = settle({"space": {}}, {"eval_steps": 10, "max_steps": 50}, None)
    assert (loss.direction, loss.pruner, loss.eval_steps, loss.max_steps) == ("minimize", "median", 10, 50)
    rouge = settle({"space": {}, "objective": "rouge_l", "n_trials": 12}, {}, None)
    assert (rouge.direction, rouge.pruner, rouge.startup_trials, rouge.pruner_startup_trials) == ("maximize", "none", 4, 3)


def test_a_metric_objective_cannot_be_pruned_and_eval_loss_takes_no_evaluation() -> None:
    with pytest.raises(InvalidArguments, match="pruner: trials are pruned on their eval loss while they train"):
        settle({"space": {}, "objective": "exact_match", "pruner": "median"}, {}, None)
    with pytest.raises(InvalidArguments, match="evaluation: only for an evaluation metric objective"):
        settle({"space": {}, "evaluation": {"limit": 5}}, {}, None)
    with pytest.raises(InvalidArguments, match="objective: 'accuracy' is not one of eval_loss, exact_match"):
        settle({"space": {}, "objective": "accuracy"}, {}, None)


def test_the_caller_overrides_the_config_field_by_field() -> None:
    config = SweepConfig(recipe="sft-lora-tiny", spec={"max_steps": 30, "eval_steps": 5}, space={"lora_r": {"type": "int"}},
                         n_trials=6, parallel=2)  # fmt: skip
    merged = merge(config, {"spec": {"dataset": "d", "max_steps": 40}, "space": {"learning_rate": LR}, "n_trials": 3,
                            "parallel": None})  # fmt: skip
    assert merged["spec"] == {"max_steps": 40, "eval_steps": 5, "dataset": "d"}
    assert set(merged["space"]) == {"lora_r", "learning_rate"}
    assert (merged["n_trials"], merged["parallel"]) == (3, 2) and "recipe" not in merged


def test_every_shipped_sweep_config_loads_and_its_space_parses() -> None:
    assert {"lr-rank-tiny", "lora-shape", "dpo-beta"} <= set(list_sweep_configs())
    for name in list_sweep_configs():
        config = load_sweep_config(name)
        SearchSpace.parse(config.space)
