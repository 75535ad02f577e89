"""A flywheel cycle: the packaged workflow configs/workflows/flywheel.yaml (SFT), or
flywheel-dpo.yaml (SFT, then DPO from the merged SFT model) when the traces give enough DPO
pairs, with what a person would otherwise look up before running it — the model's production
version and the base it trains from, where the last cycle ended — and the checks that refuse a
cycle before anything starts (no production version, a held-out set made of traces)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.states import JobState
from forge_mcp.models.records import ModelVersion
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.security.principal import Principal
from forge_mcp.workflows import WORKFLOW_KIND

FLYWHEEL_WORKFLOW = "flywheel"
FLYWHEEL_DPO_WORKFLOW = "flywheel-dpo"
CYCLE_WORKFLOWS = (FLYWHEEL_WORKFLOW, FLYWHEEL_DPO_WORKFLOW)
TRAIN_STEP = "train"
PAST_RUNS_READ = 200  # the caller's newest workflow runs searched for the last cycle
MAX_MIN_ROWS = 1_000_000


class CycleSettings(BaseModel):
    """The workflow's knobs a caller may set (its inputs of the same names)."""

    min_rows: int = Field(20, ge=1, le=MAX_MIN_ROWS)
    min_rating: int = Field(4, ge=1, le=5)
    judge_min_score: int | None = Field(None, ge=1, le=5)
    recipe: str = "sft-lora"
    max_steps: int = Field(200, ge=1, le=10_000_000)
    learning_rate: float = Field(2e-4, gt=0, le=0.1)
    metric: str = "eval_loss"
    limit: int = Field(200, ge=1)
    max_new_tokens: int = Field(64, ge=1)
    min_pairs: int = Field(10, ge=1, le=MAX_MIN_ROWS)  # fewer DPO pairs: the cycle is SFT only
    dpo_max_steps: int = Field(100, ge=1, le=10_000_000)
    dpo_learning_rate: float = Field(5e-5, gt=0, le=0.1)
    dpo_beta: float = Field(0.1, gt=0, le=10)

    def inputs(self, workflow: str) -> dict[str, Any]:
        """The workflow's inputs among these (flywheel.yaml takes no DPO settings); one left
        unset (None) is left out, to the document's default."""
        given = self.model_dump(exclude={"min_pairs"}, exclude_none=True)
        return given if workflow == FLYWHEEL_DPO_WORKFLOW else {k: v for k, v in given.items() if not k.startswith("dpo_")}


async def production_and_base(models: ModelRegistry, name: str) -> tuple[ModelVersion, str]:
    """The production version of `name` and the folder a candidate trains from: an adapter's
    base model, or a full version's own weights."""
    named = await models.get(name)  # NotFound names model_list and model_register
    production = await models.repo.production(named.name)
    if production is None:
        raise InvalidArguments(f"model: {named.name} has no production version; a cycle improves on production, so "
                               f"promote a version first (model_promote {{'model': '{named.name}@v<N>', 'stage': 'production'}})")  # fmt: skip
    base = production.base_model if production.kind == "adapter" else production.path
    if base is None:
        raise InvalidArguments(f"model: {production.id} is an adapter with no base model recorded; register the "
                               "production version again with base_model")  # fmt: skip
    return production, base


def check_held_out(info: DatasetInfo) -> None:
    """The held-out set must be data no training trace came from: not a dataset made of traces."""
    if "traces" in info.source:
        raise InvalidArguments(f"eval_dataset: {info.id} was made from traces (traces_to_dataset), so a cycle could "
                               "train on the traces it scores; give a held-out dataset imported or prepared from "
                               "other data (dataset_import)")  # fmt: skip


async def last_cycle_end(engine: JobEngine, principal: Principal, model: str) -> float | None:
    """Where the caller's last cycle for `model` that trained ended its trace selection (its
    `until`, else when it started); None when none did. A cycle that stopped before training
    used no trace, so its traces count again."""
    runs = await engine.list(principal, states=[JobState.SUCCEEDED], kind=WORKFLOW_KIND, limit=PAST_RUNS_READ)
    ends = [_selection_end(job.arguments, job.created_at) for job in runs
            if _is_cycle_of(job.arguments, model) and _trained(job.result)]  # fmt: skip
    return max(ends, default=None)


def _is_cycle_of(arguments: dict[str, Any], model: str) -> bool:
    document, inputs = arguments.get("document") or {}, arguments.get("inputs") or {}
    return document.get("name") in CYCLE_WORKFLOWS and inputs.get("model") == model


def _trained(result: dict[str, Any] | None) -> bool:
    steps = (result or {}).get("steps") or []
    return any(step.get("name") == TRAIN_STEP and step.get("state") == "succeeded" for step in steps)


def _selection_end(arguments: dict[str, Any], created_at: float) -> float:
    until = (arguments.get("inputs") or {}).get("until")
    return float(until) if isinstance(until, int | float) else created_at
