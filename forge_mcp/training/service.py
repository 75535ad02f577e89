"""Training for a caller: plan a run (a dry run, instant) and start it as that caller's job.
The plan's arithmetic is in plan.py, gathering what it needs in planner.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.extras import require_extra
from forge_mcp.jobs.constants import LOCAL_TARGET
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.security.principal import Principal
from forge_mcp.training.machines import Machine, target_machine, this_machine
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.planner import plan_training
from forge_mcp.workspace import Workspace

TRAIN_KIND = "train"


class TrainingService:
    def __init__(
        self, workspace: Workspace, datasets: DatasetRepository, engine: JobEngine, jobs: JobRepository,
        targets: ComputeRepository, here: Callable[[Path], Machine] = this_machine,
    ) -> None:
        self._workspace = workspace
        self._datasets = datasets
        self._engine = engine
        self._jobs = jobs
        self._targets = targets
        self._here = here  # this machine, measured when a plan is made

    async def plan(self, spec: dict[str, Any], recipe: str | None = None, compute: str | None = None) -> TrainPlan:
        """Planned where `compute` names; without it, here when it fits here, else on the first
        compute target (by name) where it fits, as its last probe found it. `placement` says why."""
        if compute not in (None, LOCAL_TARGET):
            target = await self._targets.get(compute)
            if target is None:
                self._engine.executor_of(compute)  # refuses naming the targets there are
                raise NotFound(f"argument 'compute': no compute target {compute!r}; compute_list lists them")
            machine = target_machine(target.name, target.kind, target.probe)
            if machine is None:
                raise InvalidArguments(f"argument 'compute': {compute} was never probed; compute_probe it first")
            plan = await plan_training(self._workspace, self._datasets, self._jobs, spec, recipe, machine)
            return _placed(plan, compute, [f"{compute}: named by the caller; planned against {machine.basis}"])
        try:
            machine = await asyncio.to_thread(self._here, self._workspace.root)
            here = await plan_training(self._workspace, self._datasets, self._jobs, spec, recipe, machine)
        except InvalidArguments as refused:
            here, why_not_here = None, refused
        if here is not None and (compute == LOCAL_TARGET or here.memory.fits):
            why = "named by the caller" if compute == LOCAL_TARGET else f"fits ({_fit(here)})"
            return _placed(here, LOCAL_TARGET, [f"local: {why}"])
        placement = [f"local: {'does not fit (' + _fit(here) + ')' if here else why_not_here.message}"]
        for target in await self._targets.list():
            machine = target_machine(target.name, target.kind, target.probe)
            if machine is None:
                placement.append(f"{target.name}: never probed")
                continue
            try:
                there = await plan_training(self._workspace, self._datasets, self._jobs, spec, recipe, machine)
            except InvalidArguments as refused:
                placement.append(f"{target.name}: {refused.message}")
                continue
            if there.memory.fits:
                return _placed(there, target.name, [*placement, f"{target.name}: fits ({_fit(there)}; {machine.basis})"])
            placement.append(f"{target.name}: does not fit ({_fit(there)})")
        if here is None:
            raise why_not_here
        return _placed(here, LOCAL_TARGET, placement)

    async def start(
        self,
        principal: Principal,
        spec: dict[str, Any],
        recipe: str | None = None,
        *,
        priority: int = 0,
        idempotency_key: str | None = None,
        compute: str | None = None,
        retry_elsewhere: bool = False,
    ) -> JobHandle:
        """Plans again (the spec, dataset and machine may have changed since train_plan), refuses a
        run that needs a missing extra or does not fit, and starts it as `principal`'s job; on
        the compute target `compute` names (SSH or Ray), when it names one. `retry_elsewhere`:
        if that target is lost mid-run, it runs again here or on another target where it fits."""
        arguments = await self.job_arguments(spec, recipe, compute)
        return await self._engine.submit(TRAIN_KIND, arguments, principal.name, priority=priority,
                                         idempotency_key=idempotency_key, host=arguments["plan"]["compute"],
                                         retry_elsewhere=retry_elsewhere)  # fmt: skip

    async def job_arguments(self, spec: dict[str, Any], recipe: str | None = None, compute: str | None = None) -> dict[str, Any]:
        """A train job's arguments for `spec`, planned and checked as train_start does: what a
        sweep's trial submits as its step. Where it runs is the plan's `compute`."""
        plan = await self.plan(spec, recipe, compute)
        require_extra("mlx" if plan.backend == "mlx" else "train", f"train_start on the {plan.backend} backend")
        if not plan.memory.fits:
            raise InvalidArguments(f"spec: needs about {plan.memory.total_gib} GiB but {plan.memory.available_gib} GiB are "
                                   "available; " + "; ".join(plan.suggestions + plan.placement))  # fmt: skip
        dataset = await self._datasets.get(plan.dataset_id)
        base = self._workspace.resolve(plan.spec.base_model, field="spec.base_model")
        general = await self._datasets.get(plan.general_dataset_id) if plan.general_dataset_id else None
        return {"plan": plan.model_dump(mode="json"), "base_path": self._workspace.shown(base), "dataset_path": dataset.path,
                "general_path": general.path if general else None}  # fmt: skip


def _placed(plan: TrainPlan, compute: str, placement: list[str]) -> TrainPlan:
    return plan.model_copy(update={"compute": compute, "placement": placement})


def _fit(plan: TrainPlan) -> str:
    memory = plan.memory
    there = "memory not known" if memory.available_gib is None else f"of {memory.available_gib} GiB"
    return f"{plan.device}, ~{memory.total_gib} GiB {there}"
