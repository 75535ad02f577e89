"""`python -m forge_mcp.worker <job_id>`: runs one job in its own process.

Reads runs/<job>/job.json (kind, arguments, attempt), looks the kind up in the
allowlist, runs it, and reports through runs/<job>/events.jsonl: progress, metrics,
heartbeats, and finally exactly one of result / error / canceled. Everything the job
prints goes to runs/<job>/worker.log. It never touches the database.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import traceback
from pathlib import Path

from forge_mcp.errors import ForgeError
from forge_mcp.jobs.constants import HEARTBEAT_S, RUN_EVENTS, RUN_SPEC
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.kinds import JobCanceled, JobContext, JobKind
from forge_mcp.workspace import Workspace

EXIT_OK, EXIT_FAILED, EXIT_CANCELED, EXIT_USAGE = 0, 1, 143, 2
ERROR_MESSAGE_MAX = 600


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m forge_mcp.worker <job_id>", file=sys.stderr)
        return EXIT_USAGE
    job_id = argv[1]
    run_dir = Path(os.environ.get("FORGE_HOME", "forge-workspace")) / "runs" / job_id
    spec = json.loads((run_dir / RUN_SPEC).read_text())
    events = EventWriter(run_dir / RUN_EVENTS)
    job = JobContext(job_id, run_dir, int(spec["attempt"]), events, parent_id=spec.get("parent_id"))
    job.install_cancel_handler()
    stop_heartbeat = threading.Event()
    heartbeat = threading.Thread(
        target=_beat, args=(events, stop_heartbeat, float(spec.get("heartbeat_s", HEARTBEAT_S))), daemon=True
    )
    heartbeat.start()
    events.emit("started", pid=os.getpid(), attempt=job.attempt)
    print(f"[forge worker] job {job_id} kind {spec['kind']} attempt {job.attempt}", flush=True)
    try:
        kind = _find_kind(spec["kind"])
        result = kind.fn(job, **spec["arguments"])
        events.emit("result", result=result.model_dump(mode="json"))
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


def _find_kind(name: str) -> JobKind:
    from forge_mcp.errors import NotFound
    from forge_mcp.tools import all_toolsets

    for toolset in all_toolsets():
        for kind in toolset.job_kinds:
            if kind.name == name:
                return kind
    raise NotFound(f"job kind {name!r} is not in this installation's allowlist")


if __name__ == "__main__":
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    raise SystemExit(main(sys.argv))
