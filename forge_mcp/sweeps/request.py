"""A sweep as asked for (sweep_start's arguments, over a YAML config of configs/sweeps/), and
as it runs: SweepSettings, the sweep job's arguments, with every default filled in, so a
restarted sweep runs on exactly what it was started with."""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forge_mcp.errors import InvalidArguments, MissingExtra, NotFound, describe_validation_error
from forge_mcp.package_data import config_file
from forge_mcp.sweeps.space import EVAL_METRICS, LOWER_IS_BETTER, OBJECTIVES

Sampler = Literal["tpe", "random", "grid", "cmaes"]
Pruner = Literal["median", "hyperband", "none"]
Objective = Literal["eval_loss", "exact_match", "contains", "rouge_l", "json_valid", "judge_score", "perplexity"]


class EvaluationSettings(BaseModel):
    """How a trial is scored when the objective is an evaluation metric (model_evaluate's options)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str | None = Field(None, max_length=80, description="Default: the training dataset")
    split: str | None = Field(None, max_length=32, description="Default: the spec's eval_split, else 'test'")
    limit: int = Field(100, ge=1, le=100_000)
    max_new_tokens: int = Field(64, ge=1, le=4096)
    judge_url: str | None = Field(None, max_length=512)
    judge_model: str | None = Field(None, max_length=200)
    judge_api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SweepSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The base training spec (the recipe applied); each trial overrides the searched fields")
    space: dict[str, Any] = Field(description="field -> {type: float|int|categorical, ...}")
    objective: Objective = "eval_loss"
    direction: Literal["minimize", "maximize"] = "minimize"
    evaluation: EvaluationSettings | None = None
    n_trials: int = Field(10, ge=1, le=500)
    parallel: int = Field(2, ge=1, le=32, description="Trials at once; admission may run fewer")
    sampler: Sampler = "tpe"
    pruner: Pruner = "median"
    seed: int = Field(0, ge=0, le=2**31 - 1)
    max_total_steps: int | None = Field(None, ge=1, description="Budget: no new trial once the trials ran this many steps")
    max_minutes: float | None = Field(None, gt=0, le=100_000, description="Budget: no new trial after this long")
    startup_trials: int = Field(0, ge=0, le=1000, description="Random trials before the sampler models the space")
    pruner_startup_trials: int = Field(0, ge=0, le=1000, description="Trials that finish before any is pruned")
    pruner_warmup_steps: int = Field(0, ge=0, description="Steps of each trial before it may be pruned")
    eval_steps: int = Field(1, ge=1, description="From the spec: the steps between the intermediate values")
    max_steps: int | None = Field(None, description="From the spec: the most steps a trial runs (hyperband's resource)")
    compute: str | None = Field(None, description="The compute target the trials train on (default this machine)")

    @model_validator(mode="after")
    def _consistent(self) -> SweepSettings:
        if self.objective in EVAL_METRICS and self.pruner != "none":
            raise ValueError(f"pruner: trials are pruned on their eval loss while they train; with objective "
                             f"{self.objective} (scored after training) give pruner 'none', or objective eval_loss")  # fmt: skip
        if self.objective == "eval_loss" and self.evaluation is not None:
            raise ValueError("evaluation: only for an evaluation metric objective (exact_match, rouge_l, …); remove it")
        return self


class SweepConfig(BaseModel):
    """A YAML file of configs/sweeps/: any of sweep_start's arguments."""

    model_config = ConfigDict(extra="forbid")

    recipe: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    space: dict[str, Any] = Field(default_factory=dict)
    objective: Objective | None = None
    direction: Literal["minimize", "maximize"] | None = None
    evaluation: dict[str, Any] | None = None
    n_trials: int | None = None
    parallel: int | None = None
    sampler: Sampler | None = None
    pruner: Pruner | None = None
    seed: int | None = None
    max_total_steps: int | None = None
    max_minutes: float | None = None
    startup_trials: int | None = None
    pruner_startup_trials: int | None = None
    pruner_warmup_steps: int | None = None
    compute: str | None = None


def list_sweep_configs() -> list[str]:
    return sorted(f.name.removesuffix(".yaml") for f in config_file("sweeps").iterdir() if f.name.endswith(".yaml"))


def load_sweep_config(name: str) -> SweepConfig:
    if name not in list_sweep_configs():
        raise NotFound(f"config: no sweep config {name!r}; the configs are " + ", ".join(list_sweep_configs()))
    data = yaml.safe_load(config_file("sweeps", f"{name}.yaml").read_text()) or {}
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        raise InvalidArguments(f"sweep config {name}: {describe_validation_error(exc, 'a sweep config', 'a key')}") from None


def merge(config: SweepConfig | None, given: dict[str, Any]) -> dict[str, Any]:
    """The config's values, then the caller's (None means not given); spec and space merge by field."""
    base = config.model_dump(exclude_none=True, exclude={"recipe"}) if config is not None else {}
    out = {**base, **{k: v for k, v in given.items() if v is not None and k not in ("spec", "space")}}
    out["spec"] = {**base.get("spec", {}), **(given.get("spec") or {})}
    out["space"] = {**base.get("space", {}), **(given.get("space") or {})}
    return out


def settle(values: dict[str, Any], spec: dict[str, Any], grid_size: int | None) -> SweepSettings:
    """Fills what depends on other values: the direction from the objective, the startup
    counts from n_trials, eval_steps and max_steps from the spec; a grid's n_trials at most its size."""
    objective = values.get("objective", "eval_loss")
    if objective not in OBJECTIVES:
        raise InvalidArguments(f"objective: {objective!r} is not one of {', '.join(OBJECTIVES)}")
    n_trials = values.get("n_trials", 10)
    if grid_size is not None and isinstance(n_trials, int):
        n_trials = min(n_trials, grid_size)
    defaults = {
        "direction": "minimize" if objective in LOWER_IS_BETTER else "maximize",
        "pruner": "median" if objective == "eval_loss" else "none",
        # Small sweeps get a short random start (optuna's own default is 10 random trials).
        "startup_trials": max(2, min(10, int(n_trials) // 3)) if isinstance(n_trials, int) else 2,
        "pruner_startup_trials": max(1, min(5, int(n_trials) // 4)) if isinstance(n_trials, int) else 1,
    }
    settled = {**defaults, **values, "n_trials": n_trials, "spec": spec,
               "eval_steps": spec.get("eval_steps") or 1, "max_steps": spec.get("max_steps")}  # fmt: skip
    try:
        settings = SweepSettings.model_validate(settled)
    except ValidationError as exc:
        raise InvalidArguments(describe_validation_error(exc, "sweep_start", "an argument")) from None
    if settings.sampler == "cmaes":
        if importlib.util.find_spec("cmaes") is None:
            raise MissingExtra("sampler cmaes", "sweep")
    return settings
