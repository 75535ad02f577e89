"""`python -m forge_mcp.jobs.warm_worker [training|none]`: a job worker started before its job.

A training job otherwise spends 4-5 s importing torch, transformers, peft and trl before its
first step. The local executor keeps one of these ready (executors/warm_pool.py): it imports
that stack, says "ready" on stdout (a pipe to the server), then waits for one line on stdin,
its job's claim (`{"run": ..., "job_id": ...}`). Once claimed it becomes what a cold
`python -m forge_mcp.worker <run>` is: FORGE_JOB_ID set, the run folder as its working
directory, its output in the run's worker.log, stdin /dev/null; it runs that one job and exits
with the worker's code. It was started in its own session, so the engine stops, kills and
re-adopts it by pid exactly as a cold worker.

It warms at the lowest CPU priority, and takes the normal one back when claimed: a worker
warming behind a job that just took its predecessor otherwise shares that job's cores as an
equal (beside a busy loop on the same core, the imports took 3.0 of 6 CPU-seconds; at the
lowest priority, 0.4, measured). Two mechanisms, because Linux shares the CPU in one of two
ways: between sessions first (the autogroup of each, where cgroups leave the CPU to the root
group), where the session's nice counts and can be raised and lowered again without
privilege; or between threads (inside a container's cgroup), where the importing thread goes
idle-priority, and ends with the imports.

End of input before a claim means the server stopped or died while it waited: it exits quietly.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from forge_mcp import worker
from forge_mcp.jobs.constants import WARM_PRELOAD, WARM_READY, WARM_RENICE_WAIT_S, WARM_SESSION_NICE
from forge_mcp.jobs.executors.base import JOB_ENV
from forge_mcp.jobs.run_dir import RunDir


@dataclass(frozen=True)
class Preload:
    """What a warm worker imports ahead."""

    # Imported first, at normal priority: modules that start threads at import (numpy's BLAS
    # pool), which would otherwise inherit the idle priority of the thread importing them.
    first: tuple[str, ...]
    # Each module, and names in it to read: transformers, trl and peft are lazy modules, whose
    # submodules load when a name is first read.
    modules: tuple[tuple[str, tuple[str, ...]], ...]


TRAINING = Preload(
    first=("numpy",),
    modules=(
        ("torch", ()),
        ("transformers", ("AutoConfig", "AutoModelForCausalLM", "AutoTokenizer", "Trainer", "TrainingArguments",
                          "TrainerCallback", "EarlyStoppingCallback", "set_seed")),  # fmt: skip
        ("peft", ("LoraConfig", "PeftModel", "get_peft_model")),
        # The trainers the hf backend runs (a name this trl lacks is skipped).
        ("trl", ("SFTConfig", "SFTTrainer", "DPOConfig", "DPOTrainer", "KTOConfig", "KTOTrainer", "RewardConfig",
                 "RewardTrainer", "GRPOConfig", "GRPOTrainer")),  # fmt: skip
        ("trl.experimental.orpo", ("ORPOConfig", "ORPOTrainer")),
        ("datasets", ("Dataset",)),
        ("pyarrow.parquet", ()),
        ("forge_mcp.backends.hf_train", ()),
        ("forge_mcp.backends.evaluate", ()),
        ("forge_mcp.backends.export", ()),
        # The warm kinds' own modules, where the worker looks its kind up.
        ("forge_mcp.training.jobs", ()),
        ("forge_mcp.models.jobs", ()),
        ("forge_mcp.serving.jobs", ()),
    ),
)
PRELOADS: dict[str, Preload] = {"training": TRAINING, "none": Preload(first=(), modules=())}
AUTOGROUP = Path("/proc/self/autogroup")  # this session's CPU share on Linux; writing a nice of 0-19 needs no privilege


def main(argv: list[str]) -> int:
    preload = argv[1] if len(argv) > 1 else WARM_PRELOAD
    if preload not in PRELOADS:
        print(f"usage: python -m forge_mcp.jobs.warm_worker [{'|'.join(PRELOADS)}]", file=sys.stderr)
        return worker.EXIT_USAGE
    # stdout is the server's pipe, kept for the one ready line; everything printed goes to the log.
    ready = os.dup(1)
    os.dup2(2, 1)
    _set_session_nice(WARM_SESSION_NICE)
    began = time.monotonic()
    loaded = _preload(PRELOADS[preload])
    # What the imports built lives as long as the process: the job's full collections (accelerate
    # runs one as training starts) need not walk it again, 0.3-0.4 s each with the training stack.
    gc.collect()
    gc.freeze()
    warmed_s = time.monotonic() - began
    print(f"[forge warm] pid {os.getpid()} ready in {warmed_s:.1f} s ({preload}: {len(loaded)} modules)", flush=True)
    try:
        os.write(ready, WARM_READY)
    except BrokenPipeError:
        return 0  # the server is gone
    os.close(ready)
    line = sys.stdin.buffer.readline()
    waited_s = time.monotonic() - began - warmed_s
    if not line:
        return 0  # the server closed the pipe: it stopped or died before a job came
    try:
        claim = json.loads(line)
        run, job_id = RunDir.at(Path(claim["run"])), str(claim["job_id"])
    except (ValueError, KeyError, TypeError) as exc:
        print(f"[forge warm] pid {os.getpid()}: unreadable claim {line[:200]!r}: {exc}", flush=True)
        return worker.EXIT_USAGE
    _become_worker_of(run, job_id)
    _set_session_nice(0)
    print(f"[forge worker] warm start: pid {os.getpid()}, the {preload} imports done ahead "
          f"({warmed_s:.1f} s), ready {waited_s:.1f} s before this job", flush=True)  # fmt: skip
    return worker.main(["forge_mcp.worker", str(run.path)], warm=True)


def _preload(preload: Preload) -> list[str]:
    """The modules imported. One that fails (an optional dependency missing or broken) is left to
    the job that needs it, which says so itself."""
    loaded = [module for module in preload.first if _import(module, ())]
    if preload.modules:
        importing = threading.Thread(target=_import_idle, args=(preload.modules, loaded), name="forge-warm-imports")
        importing.start()
        importing.join()
    return loaded


def _import_idle(modules: tuple[tuple[str, tuple[str, ...]], ...], loaded: list[str]) -> None:
    """In a thread of its own: Linux schedules each thread apart, and a thread that lowers its
    priority cannot raise it again, so the job's main thread must not be the one lowered."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # this thread only
    except (AttributeError, OSError):  # not Linux, or not allowed: import at normal priority
        pass
    loaded.extend(module for module, names in modules if _import(module, names))


def _import(module: str, names: tuple[str, ...]) -> bool:
    try:
        imported = importlib.import_module(module)
    except Exception as exc:
        print(f"[forge warm] not preloaded: {module}: {exc}", flush=True)
        return False
    for name in names:
        try:
            getattr(imported, name, None)  # absent from this version: nothing to load
        except Exception as exc:
            print(f"[forge warm] not preloaded: {module}.{name}: {exc}", flush=True)
    return True


def _set_session_nice(nice: int) -> None:
    deadline = time.monotonic() + WARM_RENICE_WAIT_S
    while True:
        try:
            AUTOGROUP.write_text(str(nice))
            return
        except BlockingIOError:  # the kernel takes one change per 100 ms from an unprivileged process
            if time.monotonic() > deadline:
                print(f"[forge warm] could not set this session's nice to {nice}: the kernel kept refusing", flush=True)
                return
            time.sleep(0.05)
        except OSError:  # not Linux, or no autogroups: the cgroup shares the CPU out, and the thread's priority counts
            return


def _become_worker_of(run: RunDir, job_id: str) -> None:
    """What the executor gives a cold worker at its start, given to this process now."""
    os.environ[JOB_ENV] = job_id  # not in /proc/<pid>/environ, but every child it starts carries it
    os.chdir(run.path)
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(run.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the server's pipe is not the job's
    os.close(null)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    raise SystemExit(main(sys.argv))
