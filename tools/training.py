"""Training: plan a run (instant dry run) and start it as a job."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.planner import plan_training
from forge_mcp.training.spec import TrainSpec, list_recipes

toolset = Toolset("training", "Plan and run SFT, DPO and continued pre-training with LoRA, QLoRA or full fine-tuning.")

_NAMED = {"base_model", "dataset", "method", "adapter"}
SpecFields = Annotated[
    dict[str, Any],
    Field(description="Training spec, over the recipe's: at least base_model (a local model folder) and dataset "
                      "('<name>' or '<name>@v<N>'); method sft|dpo|cpt, adapter lora|qlora|full. Others: "
                      f"{', '.join(f for f in TrainSpec.model_fields if f not in _NAMED)}. train_plan's result shows "
                      "the value of each."),  # fmt: skip
]
Recipe = Annotated[str | None, Field(max_length=64, description=f"Preset: {', '.join(list_recipes())}")]


@toolset.capability(scope="read", title="Plan a training run")
async def train_plan(services: Services, spec: SpecFields, recipe: Recipe = None) -> TrainPlan:
    """Dry run, instant: validates a training spec (every problem at once), checks the dataset's
    kind against the method (sft: messages, dpo: preference, cpt: text or messages) and its
    splits (without splits it trains on all rows, less a seeded tenth held out when eval_split
    is given), fits a default max_length to the model (`notes` says so), picks the backend
    (CUDA: hf, Apple Silicon: mlx, else hf on CPU) and estimates peak memory and time. When it
    will not fit, `suggestions` says what to change."""
    return await plan_training(services, spec, recipe)


def _train_resources(arguments: dict[str, Any]) -> Resources:
    plan = TrainPlan.model_validate(arguments["plan"])
    return Resources(gpus=plan.processes if plan.device == "cuda" else 0, memory_gb=plan.memory.total_gib * plan.processes)


@toolset.job_kind("train", resources=_train_resources, checkpoints=True)
def train_job(job: JobContext, plan: dict[str, Any], base_path: str, dataset_path: str, general_path: str | None = None) -> Any:
    base = job.workspace.resolve_tree(base_path, field="spec.base_model")  # again: links can change after submission
    resolved = TrainPlan.model_validate(plan)
    for note in resolved.notes:  # what the plan chose for the caller, where job_logs shows it
        job.log(note)
    if resolved.processes > 1:
        from forge_mcp.backends.hf_launch import launch as train
    elif resolved.backend == "mlx":
        from forge_mcp.backends.mlx_train import train
    else:
        from forge_mcp.backends.hf_train import train
    workspace = job.workspace  # the dataset folders are checked again where they are read
    general = workspace.resolve_tree(general_path, field="general_dataset") / "data.parquet" if general_path else None
    return train(job, resolved, base, workspace.resolve_tree(dataset_path, field="dataset") / "data.parquet", general)


@toolset.capability(scope="train", title="Start training", long_running=True)
async def train_start(
    services: Services,
    principal: Principal,
    spec: Annotated[dict[str, Any], Field(description="The spec, as for train_plan")],
    recipe: Recipe = None,
    priority: Annotated[int, Field(ge=-100, le=100)] = 0,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Starts a training job from the spec train_plan checks (call train_plan first for memory and
    time). Metrics every logging_steps (loss, learning rate, grad norm, tokens/s, eval loss,
    memory), progress with an ETA, divergence and overfitting warnings, verified checkpoints;
    job_resume and crash recovery continue from the newest. The result names the adapter (or
    model) folder. Follow with job_wait."""
    plan = await plan_training(services, spec, recipe)
    require_extra("mlx" if plan.backend == "mlx" else "train", f"train_start on the {plan.backend} backend")
    if not plan.memory.fits:
        raise InvalidArguments(f"spec: needs about {plan.memory.total_gib} GiB but {plan.memory.available_gib} GiB are "
                               "available; " + "; ".join(plan.suggestions))  # fmt: skip
    dataset: DatasetInfo = await services.datasets.repo.get(plan.dataset_id)
    base = services.workspace.resolve(plan.spec.base_model, field="spec.base_model")
    general = await services.datasets.repo.get(plan.general_dataset_id) if plan.general_dataset_id else None
    arguments = {"plan": plan.model_dump(mode="json"), "base_path": services.workspace.shown(base), "dataset_path": dataset.path,
                 "general_path": general.path if general else None}  # fmt: skip
    return await services.jobs.submit("train", arguments, principal.name, priority=priority, idempotency_key=idempotency_key)
