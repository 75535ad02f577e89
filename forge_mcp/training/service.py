"""Training for a caller: plan a run (a dry run, instant) and start it as that caller's job.
The plan's arithmetic is in plan.py, gathering what it needs in planner.py."""

from __future__ import annotations

from typing import Any

from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.security.principal import Principal
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.planner import plan_training
from forge_mcp.workspace import Workspace

TRAIN_KIND = "train"


class TrainingService:
    def __init__(
        self, workspace: Workspace, datasets: DatasetRepository, engine: JobEngine, jobs: JobRepository
    ) -> None:
        self._workspace = workspace
        self._datasets = datasets
        self._engine = engine
        self._jobs = jobs

    async def plan(self, spec: dict[str, Any], recipe: str | None = None) -> TrainPlan:
        return await plan_training(self._workspace, self._datasets, self._jobs, spec, recipe)

    async def start(
        self,
        principal: Principal,
        spec: dict[str, Any],
        recipe: str | None = None,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        compute: str | None = None,
    ) -> JobHandle:
        """Plans again (the spec, dataset and machine may have changed since train_plan), refuses a
        run that needs a missing extra or does not fit, and starts it as `principal`'s job; on
        the compute target `compute` names (SSH or Ray), when it names one."""
        arguments = await self.job_arguments(spec, recipe)
        return await self._engine.submit(TRAIN_KIND, arguments, principal.name, priority=priority,
                                         idempotency_key=idempotency_key,
                                         host=compute)  # fmt: skip

    async def job_arguments(self, spec: dict[str, Any], recipe: str | None = None) -> dict[str, Any]:
        """A train job's arguments for `spec`, planned and checked as train_start does: what a
        sweep's trial submits as its step."""
        plan = await self.plan(spec, recipe)
        require_extra("mlx" if plan.backend == "mlx" else "train", f"train_start on the {plan.backend} backend")
        if not plan.memory.fits:
            raise InvalidArguments(f"spec: needs about {plan.memory.total_gib} GiB but {plan.memory.available_gib} GiB are "
                                   "available; " + "; ".join(plan.suggestions))  # fmt: skip
        dataset = await self._datasets.get(plan.dataset_id)
        base = self._workspace.resolve(plan.spec.base_model, field="spec.base_model")
        general = await self._datasets.get(plan.general_dataset_id) if plan.general_dataset_id else None
        return {"plan": plan.model_dump(mode="json"), "base_path": self._workspace.shown(base), "dataset_path": dataset.path,
                "general_path": general.path if general else None}  # fmt: skip
