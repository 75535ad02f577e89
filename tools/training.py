"""Training: plan a run (instant dry run) and start it as a job."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.spec import TrainSpec, list_recipes

toolset = Toolset("training", "Plan and run SFT, DPO, ORPO, KTO, reward models, GRPO and continued pre-training with "
                  "LoRA, QLoRA or full fine-tuning.")

_NAMED = {"base_model", "dataset", "method", "adapter"}
SpecFields = Annotated[
    dict[str, Any],
    Field(description="Training spec, over the recipe's: at least base_model (a local model folder) and dataset "
                      "('<name>' or '<name>@v<N>'); method sft|dpo|orpo|kto|reward|grpo|cpt, adapter lora|qlora|full; grpo "
                      'takes rewards, e.g. [{"name": "exact_match"}]. Others: '
                      f"{', '.join(f for f in TrainSpec.model_fields if f not in _NAMED)}. train_plan's result shows "
                      "the value of each."),  # fmt: skip
]
Recipe = Annotated[str | None, Field(max_length=64, description=f"Preset: {', '.join(list_recipes())}")]
Compute = Annotated[str | None, Field(description="A compute target (compute_list), or local; default: as train_plan places it")]


@toolset.capability(scope="read", title="Plan a training run", read_only=True)
async def train_plan(services: Services, spec: SpecFields, recipe: Recipe = None, compute: Compute = None) -> TrainPlan:
    """Dry run, instant; call it before train_start. Validates a training spec (every problem at
    once), checks the dataset's kind against the method (sft, grpo: messages; dpo, orpo, reward:
    preference; kto: preference or labeled; cpt: text or messages) and splits (none: all rows,
    less a seeded tenth when eval_split is given), fits max_length to the model (`notes`), picks
    the backend (CUDA: hf, Apple Silicon: mlx, else hf on CPU), estimates memory and time;
    `suggestions` if it will not fit. `compute`: where it would run (`placement`: why)."""
    return await services.training.plan(spec, recipe, compute)


@toolset.capability(scope="train", title="Start training", long_running=True, job_kind="train")
async def train_start(
    services: Services,
    principal: Principal,
    spec: Annotated[dict[str, Any], Field(description="The spec, as for train_plan")],
    recipe: Recipe = None,
    priority: Annotated[int, Field(ge=-100, le=100)] = 0,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
    compute: Compute = None,
    retry_elsewhere: Annotated[bool, Field(description="If its target is lost, rerun here or on another that fits")] = False,
) -> JobHandle:
    """Starts training from a spec train_plan accepted: a job of minutes to hours (train_plan
    estimates it). Metrics every logging_steps (loss, learning rate, grad norm, tokens/s, eval loss,
    memory), an ETA, divergence and overfitting warnings, verified checkpoints that job_resume and
    crash recovery continue from. The result names the adapter (or model) folder, for
    model_register. Follow with job_wait."""
    return await services.training.start(principal, spec, recipe, priority=priority, idempotency_key=idempotency_key,
                                         compute=compute, retry_elsewhere=retry_elsewhere)  # fmt: skip
