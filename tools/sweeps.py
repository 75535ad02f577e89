"""Hyperparameter sweeps: an Optuna search over training-spec fields whose trials are train jobs,
run in parallel, pruned on their eval loss, and durable across server restarts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.sweeps.request import list_sweep_configs
from forge_mcp.sweeps.service import SweepList, SweepStatus
from forge_mcp.sweeps.space import OBJECTIVES

toolset = Toolset("sweeps", "Hyperparameter search over training runs: trials as parallel, prunable jobs.")

SweepId = Annotated[str, Field(pattern=r"^job_[0-9a-f]{8,40}$", description="The job_id sweep_start returned")]


@toolset.capability(scope="train", title="Start a hyperparameter sweep", long_running=True, job_kind="sweep")
async def sweep_start(
    services: Services,
    principal: Principal,
    spec: Annotated[dict[str, Any] | None, Field(description="Base spec, as for train_plan; eval_split and "
                                                 "eval_steps for pruning")] = None,  # fmt: skip
    space: Annotated[dict[str, Any] | None, Field(description='Field -> range, e.g. {"learning_rate": {"type": "float", '
                                                  '"low": 1e-5, "high": 1e-2, "log": true}, "lora_r": {"type": "int", '
                                                  '"low": 4, "high": 32, "step": 4}}; or type categorical with '
                                                  'choices')] = None,  # fmt: skip
    config: Annotated[str | None, Field(description=f"configs/sweeps file ({', '.join(list_sweep_configs())}) "
                                        "under these arguments")] = None,  # fmt: skip
    recipe: Annotated[str | None, Field(max_length=64, description="Recipe under spec")] = None,
    objective: Annotated[str | None, Field(description=f"{', '.join(OBJECTIVES)}; not eval_loss: a model_evaluate "
                                           "job scores each trial")] = None,  # fmt: skip
    direction: Literal["minimize", "maximize"] | None = None,
    n_trials: Annotated[int | None, Field(ge=1, le=500, description="Default 10")] = None,
    parallel: Annotated[int | None, Field(ge=1, le=32, description="Default 2")] = None,
    sampler: Literal["tpe", "random", "grid", "cmaes"] | None = None,
    pruner: Literal["median", "hyperband", "none"] | None = None,
    evaluation: Annotated[dict[str, Any] | None, Field(description="model_evaluate's dataset, split, limit, "
                                                       "max_new_tokens, judge_url, judge_model")] = None,  # fmt: skip
    max_total_steps: Annotated[int | None, Field(ge=1, description="Budget")] = None,
    max_minutes: Annotated[float | None, Field(gt=0, description="Budget")] = None,
    seed: Annotated[int | None, Field(ge=0)] = None,
    compute: Annotated[str | None, Field(description="Train the trials on this compute target (compute_list)")] = None,
    priority: Annotated[int, Field(ge=-100, le=100)] = 0,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """An Optuna search, when one run cannot pick the hyperparameters: each trial is a train job
    over the base spec with its own values of the searched fields, `parallel` at once; the pruner
    stops trials whose eval loss trails. Costs up to n_trials runs (max_total_steps, max_minutes cap
    it); train_plan checks the space's edges first. The id works with job_wait, job_cancel,
    job_logs; then sweep_status; model_register with it registers the best trial."""
    given = {"spec": spec, "space": space, "objective": objective, "direction": direction, "n_trials": n_trials,
             "parallel": parallel, "sampler": sampler, "pruner": pruner, "evaluation": evaluation,
             "max_total_steps": max_total_steps, "max_minutes": max_minutes, "seed": seed, "compute": compute}  # fmt: skip
    return await services.sweeps.start(principal, given, config=config, recipe=recipe, priority=priority,
                                       idempotency_key=idempotency_key)  # fmt: skip


@toolset.capability(scope="read", title="Show a sweep", read_only=True)
async def sweep_status(
    services: Services,
    principal: Principal,
    sweep_id: SweepId,
    charts: Annotated[bool, Field(description="Attach the optimisation-history and parallel-coordinates PNGs")] = True,
) -> SweepStatus:
    """A sweep's trials (parameters, state, objective, where a pruned one stopped, its job), the
    best so far, parameter importance once two are complete, and charts (images; `charts` false
    skips them). Read-only."""
    return await services.sweeps.status(principal, sweep_id, charts=charts)


@toolset.capability(scope="read", title="List sweeps", read_only=True)
async def sweep_list(services: Services, principal: Principal, limit: Annotated[int, Field(ge=1, le=200)] = 20) -> SweepList:
    """Your sweeps, newest first, with progress and best value. Instant, read-only."""
    return await services.sweeps.list(principal, limit)
