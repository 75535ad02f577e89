"""Data-parallel training for a job on a Ray cluster: the same ranks as hf_launch's, each one a
Ray Train worker instead of a torchrun process. Ray Train's TorchTrainer places the workers on
the nodes that have a GPU (or a CPU) and the memory each asks for, sets up the process group
(NCCL on GPUs, gloo on CPUs) and the torch.distributed environment the Trainer reads, then
runs hf_launch's rank main in each: the recipe, its events and its checkpoints are the same.

The job's worker runs this inside its Ray task (compute/ray_driver.py), which holds no GPU
while its ranks train. Every rank reads and writes the run folder, so the workspace must be
the same path on every node, the assumption the Ray executor already makes. A stop of the
job interrupts `fit` in the task; the task then ends, and Ray ends the Train workers it
started (they are owned by it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from forge_mcp.jobs.context import JobContext
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.run import TrainResult

GIB = 2**30


def launch(job: JobContext, plan: TrainPlan, base_path: Path, dataset_file: Path, general_file: Path | None) -> TrainResult:
    """Run the recipe in `plan.processes` Ray Train workers and return rank 0's result."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from forge_mcp.backends.hf_launch import rank_result, write_launch

    write_launch(job, plan, base_path, dataset_file, general_file)
    per_rank: dict[str, Any] = {"CPU": 1}
    if plan.memory.total_gib > 0:
        per_rank["memory"] = int(plan.memory.total_gib * GIB)
    on_gpu = plan.device == "cuda"
    job.log(f"launching {plan.processes} training processes on {plan.device} as Ray Train workers")
    trainer = TorchTrainer(
        run_rank,
        train_loop_config={"run": str(job.run.path)},
        scaling_config=ScalingConfig(num_workers=plan.processes, use_gpu=on_gpu, resources_per_worker=per_rank),
        run_config=RunConfig(name=f"forge-{job.job_id}", storage_path=str(job.run.path / "ray-train")),
    )
    trainer.fit()  # raises when a rank failed; job_logs has its traceback
    return rank_result(job)


def run_rank(config: dict[str, Any]) -> None:
    """One Ray Train worker: hf_launch's rank main, with Ray's RANK, WORLD_SIZE, … set."""
    from forge_mcp.backends.hf_launch import main
    from forge_mcp.jobs.run_dir import RunDir

    main(RunDir.at(Path(config["run"])))
