"""A sweep's study on disk: the journal file is the state a restarted sweep reads back, list
choices survive Optuna's scalar-only categoricals, and trials are shown as the sweep sees them."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_mcp.sweeps import study as S
from forge_mcp.sweeps.request import settle
from forge_mcp.sweeps.space import SearchSpace

pytest.importorskip("optuna")

SPACE = SearchSpace.parse({"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
                           "lora_target_modules": {"type": "categorical", "choices": ["all-linear", ["q_proj", "v_proj"]]}})  # fmt: skip


def settings(**values: object):  # noqa: ANN201
    return settle({"space": {}, "n_trials": 6, **values}, {"eval_steps": 5, "max_steps": 30}, None)


def test_the_study_is_read_back_from_its_journal_with_every_trial_and_attribute(tmp_path: Path) -> None:
    import optuna

    path = tmp_path / "study.journal"
    study = S.open_study(path, settings(), SPACE)
    first = study.ask(S.distributions(SPACE))
    first.set_user_attr(S.ATTR_JOB, "job_0123456789")
    first.report(2.5, 5)
    study.tell(first, 2.0)
    second = study.ask(S.distributions(SPACE))
    second.report(3.0, 5)
    study.tell(second, state=optuna.trial.TrialState.PRUNED)
    study.ask(S.distributions(SPACE))  # a trial a crash left running

    again = S.open_study(path, settings(), SPACE)  # what a restarted sweep does
    views = S.trial_views(again, SPACE)
    assert [v.state for v in views] == ["complete", "pruned", "running"]
    assert views[0].value == 2.0 and views[0].job_id == "job_0123456789" and views[0].last_step == 5
    assert views[1].value is None and views[1].last_step == 5
    assert all(set(v.params) == {"learning_rate", "lora_target_modules"} for v in views)
    assert all(v.params["lora_target_modules"] in ("all-linear", ["q_proj", "v_proj"]) for v in views)


def test_importance_needs_two_complete_trials(tmp_path: Path) -> None:
    study = S.open_study(tmp_path / "study.journal", settings(sampler="random"), SPACE)
    trial = study.ask(S.distributions(SPACE))
    study.tell(trial, 1.0)
    assert S.importance(study) is None
    for value in (2.0, 3.0, 0.5):
        study.tell(study.ask(S.distributions(SPACE)), value)
    assert set(S.importance(study) or {}) == {"learning_rate", "lora_target_modules"}


def test_a_grid_study_walks_the_grid_and_asks_to_stop_once_it_is_covered(tmp_path: Path) -> None:
    space = SearchSpace.parse({"lora_r": {"type": "int", "low": 4, "high": 8, "step": 4},
                               "lora_target_modules": {"type": "categorical", "choices": ["all-linear", ["q_proj"]]}})  # fmt: skip
    study = S.open_study(tmp_path / "study.journal", settings(sampler="grid"), space)
    seen = []
    for _ in range(3):
        trial = study.ask(S.distributions(space))
        seen.append(tuple(str(v) for v in S.decode_params(space, trial.params).values()))
        study.tell(trial, 1.0)
    last = study.ask(S.distributions(space))
    seen.append(tuple(str(v) for v in S.decode_params(space, last.params).values()))
    # Outside study.optimize that request is an error (SweepLoop.tell expects it); the value is stored first.
    with pytest.raises(RuntimeError, match="Study.stop"):
        study.tell(last, 1.0)
    assert len(set(seen)) == 4 and [v.state for v in S.trial_views(study, space)] == ["complete"] * 4


@pytest.mark.parametrize(("sampler", "pruner"), [("cmaes", "hyperband"), ("tpe", "median"), ("random", "none")])
def test_every_sampler_and_pruner_runs_an_ask_report_tell_loop(tmp_path: Path, sampler: str, pruner: str) -> None:
    """What a sweep does with a study: ask with all parameters at once, report each eval, ask
    whether to prune, tell. A losing trial (its loss stays high) is pruned by the median pruner."""
    import optuna

    space = SearchSpace.parse({"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
                               "lora_r": {"type": "int", "low": 4, "high": 16, "step": 4}})  # fmt: skip
    study = S.open_study(tmp_path / "study.journal", settings(sampler=sampler, pruner=pruner), space)
    pruned = 0
    for number in range(8):
        trial = study.ask(S.distributions(space))
        for step in (10, 20, 30):
            trial.report(1.0 if number < 3 else 5.0, step)  # the first three are the best there will be
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned += 1
                break
        else:
            study.tell(trial, 1.0 if number < 3 else 5.0)
    assert len(S.trial_views(study, space)) == 8
    assert pruned == 0 if pruner == "none" else pruned >= 1
