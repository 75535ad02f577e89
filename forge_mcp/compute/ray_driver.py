"""`python -m forge_mcp.compute.ray_driver <run folder> <address>`: one job on a Ray cluster.

The Ray executor (jobs/executors/ray.py) starts this on the server's machine exactly as the
local executor starts a worker — own session, output to the run's worker.log — so the
engine watches, stops and re-attaches it the same way. It joins the cluster as a driver and
submits the job's worker as one Ray task asking for what the job declared (job.json: a CPU,
its GPUs, its memory), so Ray places it on a node that has them. A data-parallel training
(job.json's processes > 1) runs its ranks as Ray Train workers instead, each asking for its own
GPU and memory on whichever node has them (backends/ray_train_launch.py): the task that drives
them then asks for one CPU only. The task runs
`forge_mcp.worker`'s main in its Ray worker process (one task per process), which reads the
run folder and writes its events there: the workspace must be the same path on every node
(shared storage), as on a one-machine cluster it is.

Stop (SIGTERM here) becomes Ray's cancel of the task, which the worker takes as a stop
request (a checkpoint is saved, then the canceled event); after STOP_GRACE_S the task is
force-killed. When the Ray worker dies before reporting an outcome (killed, out of memory,
its node lost), this writes the job's error event with Ray's reason. The driver exiting
for any reason takes its task with it: Ray ends the tasks of a driver that is gone."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.jobs.events import TERMINAL_EVENTS, EventWriter, complete_events
from forge_mcp.jobs.executors.base import JOB_ENV
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec

EXIT_OK, EXIT_FAILED, EXIT_CANCELED, EXIT_USAGE = 0, 1, 143, 2
STOP_GRACE_S = 30.0  # after a stop, how long the task may take to save and end before it is killed
WAIT_STEP_S = 0.5
GIB = 2**30
REASON_RAY_WORKER_DIED = "ray_worker_died"


def run_worker(run_folder: str) -> int:
    """The Ray task: the forge worker, in this Ray worker process (max_calls=1: it ends with it)."""
    from forge_mcp.worker import main

    # The worker's output goes where a local worker's goes, the run's worker.log (on the shared
    # workspace): written as it happens, none of it lost when the task ends.
    log = os.open(RunDir.at(Path(run_folder)).log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    return main(["forge_mcp.worker", run_folder])


def drive(run: RunDir, address: str) -> int:
    spec = JobSpec.read(run)
    import ray

    try:
        ray.init(address=address, namespace="forge-mcp", log_to_driver=False, logging_level="WARNING")
    except Exception as exc:  # ConnectionError, or Ray's own on a version mismatch
        print(f"[forge ray] could not join the Ray cluster at {address}: {exc}", flush=True)
        _report_unless_reported(run, "error", reason=C.REASON_HOST_UNREACHABLE,
                                message=f"could not join the Ray cluster at {address} ({_short(exc)}); compute_probe "
                                "checks the target, job_resume runs the job again")  # fmt: skip
        return EXIT_FAILED
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # after ray.init, which sets its own
    needs: dict[str, Any]
    if spec.processes > 1:  # the ranks are Ray Train workers asking for their own share
        needs = {"num_cpus": 1, "num_gpus": 0}
    else:
        needs = {"num_cpus": 1, "num_gpus": spec.gpus}
        if spec.memory_gb > 0:
            needs["memory"] = int(spec.memory_gb * GIB)
    if spec.service:
        # A service listens on its node's loopback, which the server reaches only on its own node
        # (this driver's: a driver that joins by GCS address runs on a node of the cluster).
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        needs["scheduling_strategy"] = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    # The worker's environment, which the Ray workers it starts (Train's ranks) inherit from its
    # runtime_env: the job id every process of the job carries, as with the other executors.
    env = {JOB_ENV: spec.job_id, C.RAY_TASK_ENV: "1"}
    if os.environ.get(TEST_KINDS_ENV):  # the engine's own tests' kinds (jobs/catalog.py)
        env[TEST_KINDS_ENV] = os.environ[TEST_KINDS_ENV]
    # One task per Ray worker process (max_calls=1): the worker's signal handlers die with it.
    # No retries by Ray: the engine decides what a failed attempt becomes.
    task = ray.remote(max_calls=1, max_retries=0)(run_worker)
    ref = task.options(name=f"forge-{spec.job_id}", runtime_env={"env_vars": env}, **needs).remote(str(run.path))
    print(f"[forge ray] job {spec.job_id} submitted to the Ray cluster at {address} needing {_shown(needs)}", flush=True)
    stopped_at: float | None = None
    killed = False
    while True:
        ready, _ = ray.wait([ref], timeout=WAIT_STEP_S)
        if ready:
            break
        if stop.is_set() and stopped_at is None:
            print("[forge ray] stop requested: canceling the Ray task", flush=True)
            ray.cancel(ref, force=False)
            stopped_at = time.monotonic()
        elif stopped_at is not None and not killed and time.monotonic() - stopped_at > STOP_GRACE_S:
            print(f"[forge ray] the task did not end {STOP_GRACE_S:.0f} s after the stop: killing it", flush=True)
            ray.cancel(ref, force=True)
            killed = True
    try:
        return int(ray.get(ref))
    except ray.exceptions.TaskCancelledError:
        _report_unless_reported(run, "canceled")
        return EXIT_CANCELED
    except ray.exceptions.RayError as exc:
        if stopped_at is not None:
            _report_unless_reported(run, "canceled")
            return EXIT_CANCELED
        reason = _short(exc)
        print(f"[forge ray] the Ray task failed: {reason}", flush=True)
        _report_unless_reported(run, "error", reason=REASON_RAY_WORKER_DIED,
                                message=f"the Ray worker running this job died before it finished ({reason}); "
                                "job_logs has the rest, job_resume runs it again from its last checkpoint")  # fmt: skip
        return EXIT_FAILED
    finally:
        ray.shutdown()


def _report_unless_reported(run: RunDir, event: str, **payload: Any) -> None:
    """The job's outcome, when its worker died before writing one."""
    try:
        with run.events.open("rb") as f:
            _, events = complete_events(f.read())
    except FileNotFoundError:
        events = []
    if any(e.get("type") in TERMINAL_EVENTS for e in events):
        return
    writer = EventWriter(run.events)
    try:
        writer.emit(event, **payload)  # type: ignore[arg-type]
    finally:
        writer.close()


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__


def _shown(needs: dict[str, Any]) -> str:
    shown: dict[str, Any] = {"CPU": needs["num_cpus"], "GPU": needs["num_gpus"]}
    if "memory" in needs:
        shown["memory_gb"] = round(needs["memory"] / GIB, 1)
    if "scheduling_strategy" in needs:
        shown["node"] = "this machine's"
    return json.dumps(shown)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m forge_mcp.compute.ray_driver <run folder> <address>", file=sys.stderr)
        return EXIT_USAGE
    return drive(RunDir.at(Path(argv[1])), argv[2])


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    raise SystemExit(main(sys.argv))
