"""What the SSH executor runs on a target, with the target's own forge-mcp:
`python -m forge_mcp.compute.remote_ops <operation> …`, one JSON line out. Light on
purpose (standard library and psutil): it runs once per launch, poll and signal.

    launch RUN_FOLDER JOB_ID [TEST_KINDS]
                                  start the worker in its own session; {"pid", "started_at"}
                                  (TEST_KINDS "1": the engine's own tests' job kinds, as on the server)
    alive PID STARTED_AT          {"alive": bool}: that process, not a later one with its pid
    signal PID STARTED_AT SIGNAL JOB_ID
                                  TERM: its process group; KILL: the group and every process
                                  still marked with the job (children that left the group)
    digest ROOT                   stdin: a JSON list of paths under ROOT; {path: [size, sha256]}
                                  for those that are files there
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

JOB_ENV = "FORGE_JOB_ID"  # as forge_mcp.jobs.executors.base names it
TEST_KINDS_ENV = "FORGE_TEST_JOB_KINDS"  # as forge_mcp.jobs.catalog names it
LEFT_OUT_ENV = ("FORGE_HOME", "FORGE_IMPORT_ROOTS")  # the worker reads its job.json, nothing else


def launch(run_folder: str, job_id: str, test_kinds: str = "") -> dict[str, object]:
    run = Path(run_folder)
    env = {name: value for name, value in os.environ.items() if name not in (*LEFT_OUT_ENV, TEST_KINDS_ENV)}
    env[JOB_ENV] = job_id
    if test_kinds == "1":
        env[TEST_KINDS_ENV] = "1"
    with (run / "worker.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "forge_mcp.worker", str(run)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run, start_new_session=True,
        )  # fmt: skip
    return {"pid": process.pid, "started_at": psutil.Process(process.pid).create_time()}


def alive(pid: int, started_at: float) -> bool:
    try:
        process = psutil.Process(pid)
        return abs(process.create_time() - started_at) <= 1.0 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def send(pid: int, started_at: float, name: str, job_id: str) -> dict[str, object]:
    sig = signal.SIGKILL if name == "KILL" else signal.SIGTERM
    if alive(pid, started_at):
        try:
            os.killpg(pid, sig)  # the worker leads its own session: its group id is its pid
        except (ProcessLookupError, PermissionError):
            pass
    marked = []
    if sig == signal.SIGKILL:
        for process in psutil.process_iter(["pid"]):
            try:
                if process.pid != os.getpid() and process.environ().get(JOB_ENV) == job_id:
                    process.kill()
                    marked.append(process.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
    return {"signalled": name, "marked": marked}


def digest(root: str, paths: list[str]) -> dict[str, list[object]]:
    found: dict[str, list[object]] = {}
    base = Path(root)
    for relative in paths:
        path = base / relative
        if path.is_file() and not path.is_symlink():
            sha = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    sha.update(block)
            found[relative] = [path.stat().st_size, sha.hexdigest()]
    return found


def main(argv: list[str]) -> int:
    operation, *args = argv
    if operation == "launch":
        out: object = launch(*args[:3])
    elif operation == "alive":
        out = {"alive": alive(int(args[0]), float(args[1]))}
    elif operation == "signal":
        out = send(int(args[0]), float(args[1]), args[2], args[3])
    elif operation == "digest":
        out = digest(args[0], json.loads(sys.stdin.read()))
    else:
        print(f"unknown operation {operation!r}", file=sys.stderr)
        return 2
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
