"""Data-parallel training for one job: the job's worker starts `torchrun` with one process
per device (GPUs over NCCL, or CPU processes over gloo), each running this module, which
runs the same hf recipe; the Trainer reads torchrun's environment and wraps the model in
DDP. Rank 0 reports to the job's events; the others keep their own.

    python -m torch.distributed.run --nproc_per_node 2 -m forge_mcp.backends.hf_launch <run folder>

Each rank reads the run's job.json (jobs/spec.py) and its launch.json (the plan and the files).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from forge_mcp.jobs.context import JobCanceled, JobContext
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.run import TrainResult

POLL_S = 0.5


def launch(job: JobContext, plan: TrainPlan, base_path: Path, dataset_file: Path, general_file: Path | None) -> TrainResult:
    """Run the recipe in `plan.processes` processes and return rank 0's result."""
    write_launch(job, plan, base_path, dataset_file, general_file)
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(plan.processes),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               "-m", "forge_mcp.backends.hf_launch", str(job.run.path)]  # fmt: skip
    job.log(f"launching {plan.processes} training processes on {plan.device} with torchrun")
    process = subprocess.Popen(command, stdout=sys.stdout, stderr=sys.stderr)
    try:
        while process.poll() is None:
            job.check_canceled()
            try:
                process.wait(POLL_S)
            except subprocess.TimeoutExpired:
                continue
    except JobCanceled:
        process.terminate()  # the ranks share the job's process group; cancel reaches them too
        process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"a training process exited with {process.returncode}; job_logs has its traceback")
    return rank_result(job)


def write_launch(job: JobContext, plan: TrainPlan, base_path: Path, dataset_file: Path, general_file: Path | None) -> None:
    """What every rank reads (main): the plan and the files, in the run's launch.json."""
    job.run.launch.write_text(json.dumps({
        "plan": plan.model_dump(mode="json"), "base_path": str(base_path), "dataset_file": str(dataset_file),
        "general_file": str(general_file) if general_file else None,
    }))  # fmt: skip


def rank_result(job: JobContext) -> TrainResult:
    """Rank 0's summary, once every rank has ended."""
    return TrainResult.model_validate_json((job.run.output / "summary.json").read_text())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(run: RunDir) -> None:
    from forge_mcp.backends.hf_train import train

    spec = json.loads(run.launch.read_text())
    rank = int(os.environ.get("RANK", "0"))
    events = EventWriter(run.rank_events(rank))
    job = JobContext(run, JobSpec.read(run), events)
    try:
        general = Path(spec["general_file"]) if spec["general_file"] else None
        train(job, TrainPlan.model_validate(spec["plan"]), Path(spec["base_path"]), Path(spec["dataset_file"]), general)
    finally:
        events.close()
        _leave_process_group()


def _leave_process_group() -> None:
    """Each rank leaves the process group before it exits: a gloo group still open at
    interpreter exit sometimes aborted a rank after training had finished ("terminate called
    without an active exception", exit -6), failing a job whose work was done."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main(RunDir.at(Path(sys.argv[1])))
