"""The training job kind (train): runs a checked plan in a worker, on the backend the plan chose."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict

from forge_mcp.jobs.constants import RAY_TASK_ENV
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.run import TrainResult


class TrainArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: TrainPlan  # what train_plan checked at submission
    base_path: str  # workspace-relative, or inside an import root
    dataset_path: str
    general_path: str | None = None  # rows mixed in against forgetting
    # Torch's CPU threads, for runs that share the cores with others (a sweep's parallel trials on
    # a CPU): each one with every core's worth of threads oversubscribes them, 2-3x slower each.
    cpu_threads: int | None = None


def train_resources(arguments: TrainArguments) -> Resources:
    plan = arguments.plan
    return Resources(gpus=plan.processes if plan.device == "cuda" else 0, memory_gb=plan.memory.total_gib * plan.processes,
                     processes=plan.processes)


def train(job: JobContext, arguments: TrainArguments) -> TrainResult:
    workspace = job.workspace  # every folder is checked again where it is read: links can change after submission
    base = workspace.resolve_tree(arguments.base_path, field="spec.base_model")
    plan = arguments.plan
    for note in plan.notes:  # what the plan chose for the caller, where job_logs shows it
        job.log(note)
    # The backends import torch (or mlx); only the one this plan runs on is imported.
    if plan.processes > 1 and os.environ.get(RAY_TASK_ENV):
        from forge_mcp.backends.ray_train_launch import launch as run
    elif plan.processes > 1:
        from forge_mcp.backends.hf_launch import launch as run
    elif plan.backend == "mlx":
        from forge_mcp.backends.mlx_train import train as run
    else:
        from forge_mcp.backends.hf_train import train as run

        if arguments.cpu_threads and plan.device == "cpu":
            import torch

            torch.set_num_threads(arguments.cpu_threads)
            job.log(f"torch uses {arguments.cpu_threads} CPU thread(s): the cores are shared with other runs")
    general = workspace.resolve_tree(arguments.general_path, field="general_dataset") / "data.parquet" if arguments.general_path else None
    return run(job, plan, base, workspace.resolve_tree(arguments.dataset_path, field="dataset") / "data.parquet", general)


TRAIN = JobKind("train", TrainArguments, TrainResult, train, train_resources, checkpoints=True, warm=True)
