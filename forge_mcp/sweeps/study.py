"""A sweep's Optuna study: kept in a journal file in the sweep's run folder (durable, one
writer: the sweep's coroutine), read by sweep_status. Every function here is synchronous and
imports optuna when called; the server calls them in a thread.

A trial's parameters are asked all at once (`study.ask(distributions)`), so a trial in the
journal either has every parameter or was cut off by a crash before it had any."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from forge_mcp.errors import MissingExtra
from forge_mcp.sweeps.space import Choices, FloatRange, IntRange, SearchSpace

if TYPE_CHECKING:
    import optuna

    from forge_mcp.sweeps.request import SweepSettings

STUDY_NAME = "sweep"
TrialState = Literal["running", "complete", "pruned", "failed"]
# What a trial records beside its parameters (Optuna user attributes).
ATTR_JOB = "job_id"
ATTR_PRUNED_AT = "pruned_at_step"
ATTR_ERROR = "error"
ATTR_STEPS = "steps"
ATTR_ABANDONED = "abandoned"  # asked, then cut off by a crash before its parameters were written: never ran
# A study attribute: {trial number: steps} for pruned trials whose jobs trained on until their
# cancel landed. Optuna refuses attributes on a finished trial, and a trial is pruned (finished)
# before its job is stopped.
STUDY_ATTR_STEPS_RAN = "steps_ran"


def require_optuna(feature: str) -> None:
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise MissingExtra(feature, "sweep")


def open_study(path: Path, settings: SweepSettings, space: SearchSpace) -> optuna.Study:
    """The sweep's study, created on first use and loaded from its journal after that."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    # Trials are reported by the sweep's own log and sweep_status; optuna's INFO lines would go to the server's stderr.
    logging.getLogger("optuna").setLevel(logging.WARNING)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(study_name=STUDY_NAME, storage=storage, direction=settings.direction,
                               sampler=_sampler(settings, space), pruner=_pruner(settings), load_if_exists=True)  # fmt: skip


def load_study(path: Path) -> optuna.Study:
    """For reading only (sweep_status): no sampler or pruner is needed."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    logging.getLogger("optuna").setLevel(logging.WARNING)
    return optuna.load_study(study_name=STUDY_NAME, storage=JournalStorage(JournalFileBackend(str(path))))


def distributions(space: SearchSpace) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, param in space.parameters.items():
        if isinstance(param, FloatRange):
            out[name] = FloatDistribution(param.low, param.high, log=param.log)
        elif isinstance(param, IntRange):
            out[name] = IntDistribution(param.low, param.high, step=param.step, log=param.log)
        else:
            out[name] = CategoricalDistribution([encode_choice(c) for c in param.choices])
    return out


def encode_choice(value: Any) -> Any:
    """Optuna's choices are scalars; a list choice (say lora_target_modules) is stored as its JSON."""
    return json.dumps(value) if isinstance(value, list) else value


def decode_params(space: SearchSpace, params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, value in params.items():
        param = space.parameters.get(name)
        if isinstance(param, Choices) and isinstance(value, str) and value not in param.choices:
            value = json.loads(value)
        out[name] = value
    return out


@dataclass(frozen=True)
class TrialView:
    number: int
    trial_id: int  # the storage's id (the number is the study's)
    state: TrialState
    params: dict[str, Any]
    value: float | None
    job_id: str | None
    pruned_at_step: int | None
    last_step: int | None  # the newest intermediate value's step
    steps: int | None  # optimizer steps the trial's job ran
    error: str | None
    abandoned: bool


def trial_views(study: optuna.Study, space: SearchSpace) -> list[TrialView]:
    import optuna

    states = {optuna.trial.TrialState.RUNNING: "running", optuna.trial.TrialState.WAITING: "running",
              optuna.trial.TrialState.COMPLETE: "complete", optuna.trial.TrialState.PRUNED: "pruned",
              optuna.trial.TrialState.FAIL: "failed"}  # fmt: skip
    out = []
    steps_ran = study.user_attrs.get(STUDY_ATTR_STEPS_RAN, {})
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        out.append(TrialView(
            number=trial.number,
            trial_id=trial._trial_id,
            state=states[trial.state],  # type: ignore[arg-type]
            params=decode_params(space, trial.params),
            value=trial.value if trial.state == optuna.trial.TrialState.COMPLETE else None,
            job_id=attrs.get(ATTR_JOB),
            pruned_at_step=attrs.get(ATTR_PRUNED_AT),
            last_step=trial.last_step,
            steps=steps_ran.get(str(trial.number), attrs.get(ATTR_STEPS)),
            error=attrs.get(ATTR_ERROR),
            abandoned=bool(attrs.get(ATTR_ABANDONED)),
        ))  # fmt: skip
    return out


def importance(study: optuna.Study) -> dict[str, float] | None:
    """Each parameter's importance (PED-ANOVA, Optuna's default, which needs no scikit-learn), once
    two or more trials are complete (None before)."""
    import optuna

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < 2 or not study.best_trials:
        return None
    try:
        values = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError):  # e.g. every complete trial had the same parameters
        return None
    return {name: round(float(v), 4) for name, v in values.items()}


def _sampler(settings: SweepSettings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    import optuna

    seed = settings.seed
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        grid = {name: [encode_choice(v) for v in values] for name, values in space.grid().items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    if settings.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=settings.startup_trials, warn_independent_sampling=False)
    # TPE, with a "constant liar" when trials run at once, so parallel trials spread out.
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=settings.startup_trials, constant_liar=settings.parallel > 1)


def _pruner(settings: SweepSettings) -> optuna.pruners.BasePruner:
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                           n_warmup_steps=settings.pruner_warmup_steps)  # fmt: skip
    if settings.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, settings.pruner_warmup_steps or settings.eval_steps),
                                              max_resource=settings.max_steps or "auto")  # fmt: skip
    return optuna.pruners.NopPruner()
