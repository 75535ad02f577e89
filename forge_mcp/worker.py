"""`python -m forge_mcp.worker <run folder>`: runs one job in its own process.

Everything it needs is in the run folder (`runs/<job>/`, jobs/run_dir.py): it reads
job.json (kind, arguments, attempt, the workspace and import roots as the worker's
machine sees them, the runs it repeats; jobs/spec.py), looks the kind up in the
allowlist, runs it, and reports through the folder's events.jsonl: progress, metrics,
heartbeats, and finally exactly one of result / error / canceled. Everything the job
prints goes to the folder's worker.log (the executor's redirection). It never touches
the database, reads no FORGE_HOME, and does not depend on its working directory.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from forge_mcp.errors import ForgeError
from forge_mcp.jobs.catalog import JobCatalog
from forge_mcp.jobs.context import JobCanceled, JobContext
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec
from forge_mcp.workspace import Workspace

EXIT_OK, EXIT_FAILED, EXIT_CANCELED, EXIT_USAGE = 0, 1, 143, 2
ERROR_MESSAGE_MAX = 600


def main(argv: list[str], *, warm: bool = False) -> int:
    """`warm`: this process was started before its job, the training stack imported
    (forge_mcp.jobs.warm_worker); its started event says so."""
    if len(argv) != 2:
        print("usage: python -m forge_mcp.worker <run folder>", file=sys.stderr)
        return EXIT_USAGE
    run = RunDir.at(Path(argv[1]))
    try:
        spec = JobSpec.read(run)
    except (OSError, ValidationError) as exc:  # no outcome to report: the engine sees the exit code
        print(f"[forge worker] cannot read {run.spec}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if spec.job_id != run.job_id:  # a spec copied into another job's folder must not run as that job
        print(f"[forge worker] {run.spec} is job {spec.job_id}'s, not {run.job_id}'s", file=sys.stderr)
        return EXIT_USAGE
    events = EventWriter(run.events)
    job = JobContext(run, spec, events)
    job.install_cancel_handler()
    stop_heartbeat = threading.Event()
    heartbeat = threading.Thread(target=_beat, args=(events, stop_heartbeat, spec.heartbeat_s), daemon=True)
    heartbeat.start()
    events.emit("started", pid=os.getpid(), attempt=job.attempt, warm=warm)
    print(f"[forge worker] job {spec.job_id} kind {spec.kind} attempt {job.attempt}" + (" (warm start)" if warm else ""),
          flush=True)  # fmt: skip
    try:
        kind = _find_kind(spec.kind)
        result = kind.run(job, kind.parse_arguments(spec.arguments))
        events.emit("result", result=kind.parse_result(result).model_dump(mode="json"))
        return EXIT_OK
    except JobCanceled:
        print("[forge worker] canceled", flush=True)
        events.emit("canceled")
        return EXIT_CANCELED
    except ForgeError as exc:
        print(f"[forge worker] failed: {exc.message}", flush=True)
        events.emit("error", reason=exc.code, message=exc.message)
        return EXIT_FAILED
    except Exception as exc:  # the job's own bug or its library's: the traceback goes to the log
        ref = secrets.token_hex(4)
        print(f"[forge worker] unexpected error, ref {ref}:", flush=True)
        traceback.print_exc()
        events.emit("error", reason="worker_error", message=caller_message(exc, ref, job.workspace))
        return EXIT_FAILED
    finally:
        stop_heartbeat.set()
        events.close()


def caller_message(exc: Exception, ref: str, workspace: Workspace) -> str:
    """What a client reads about an unexpected failure: the library's words with workspace
    paths made relative and other host paths cut short; no class names, no traceback (both
    stay in the run log under the same ref)."""
    detail = workspace.scrub(" ".join(str(exc).split()))[:ERROR_MESSAGE_MAX] or "no detail"
    return f"the job stopped on an unexpected error (ref {ref}): {detail}; job_logs shows the traceback"


def _beat(events: EventWriter, stop: threading.Event, every_s: float) -> None:
    while not stop.wait(every_s):
        try:
            events.emit("heartbeat")
        except ValueError:  # closed while shutting down
            return


def _find_kind(name: str) -> JobKind[Any, Any]:
    """The kind from the catalog, which imports only that kind's module."""
    return JobCatalog.for_worker().load(name)


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    raise SystemExit(main(sys.argv))
