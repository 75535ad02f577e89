"""Executors start, watch and stop worker processes. One small interface; this module
has the local one (a process group per job on this machine). SSH and Ray come later
on the same interface."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from forge_mcp.jobs.constants import RUN_LOG
from forge_mcp.workspace import IMPORT_ROOTS_ENV

JOB_ENV = "FORGE_JOB_ID"  # every worker and its children carry it: how leftovers are found


@dataclass(frozen=True)
class WorkerHandle:
    job_id: str
    pid: int
    started_at: float  # the process's creation time: a pid alone may be reused
    host: str


class Executor(Protocol):
    name: str

    def launch(self, job_id: str, run_dir: Path) -> WorkerHandle: ...

    def owns(self, handle: WorkerHandle) -> bool:
        """Whether this executor can see the handle's process at all (same host)."""
        ...

    def is_alive(self, handle: WorkerHandle) -> bool: ...

    def exit_code(self, handle: WorkerHandle) -> int | None:
        """The exit status when known (negative: killed by that signal)."""
        ...

    def request_stop(self, handle: WorkerHandle) -> None:
        """Ask the worker to stop (SIGTERM to its process group)."""
        ...

    def kill_now(self, handle: WorkerHandle) -> None:
        """SIGKILL the worker and every process of its job, wherever they went."""
        ...


class LocalExecutor:
    """`python -m forge_mcp.worker <job_id>` in a new session (its own process group), with
    stdout and stderr going to runs/<job>/worker.log. The worker does not depend on the
    server: it survives a server crash and is adopted again by the restarted server."""

    name = "local"

    def __init__(self, home: Path, import_roots: tuple[Path, ...] = ()) -> None:
        self.home = home
        self.import_roots = import_roots  # the worker re-checks client paths against the same roots
        self.host = socket.gethostname()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._exit_codes: dict[int, int] = {}

    def launch(self, job_id: str, run_dir: Path) -> WorkerHandle:
        env = {**os.environ, "FORGE_HOME": str(self.home), JOB_ENV: job_id,
               IMPORT_ROOTS_ENV: os.pathsep.join(str(root) for root in self.import_roots)}  # fmt: skip
        with (run_dir / RUN_LOG).open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "forge_mcp.worker", job_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=run_dir,
                start_new_session=True,
            )
        self._children[process.pid] = process
        try:
            started = psutil.Process(process.pid).create_time()
        except psutil.NoSuchProcess:
            started = 0.0
        return WorkerHandle(job_id=job_id, pid=process.pid, started_at=started, host=self.host)

    def owns(self, handle: WorkerHandle) -> bool:
        return handle.host == self.host

    def is_alive(self, handle: WorkerHandle) -> bool:
        if handle.pid <= 0:
            return False
        child = self._children.get(handle.pid)
        if child is not None:
            if child.poll() is None:
                return True
            self._exit_codes[handle.pid] = child.returncode
            del self._children[handle.pid]  # reaped: no zombie left behind
            return False
        try:
            process = psutil.Process(handle.pid)
            if abs(process.create_time() - handle.started_at) > 1.0:
                return False  # the pid now belongs to another process
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def exit_code(self, handle: WorkerHandle) -> int | None:
        self.is_alive(handle)
        return self._exit_codes.get(handle.pid)

    def request_stop(self, handle: WorkerHandle) -> None:
        self._signal_group(handle, signal.SIGTERM)

    def kill_now(self, handle: WorkerHandle) -> None:
        members = self._members(handle)
        self._signal_group(handle, signal.SIGKILL)
        for process in members:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(members, timeout=5)
        self.is_alive(handle)  # reap our own child if it was one

    def _members(self, handle: WorkerHandle) -> list[psutil.Process]:
        """The worker, its descendants, and any process still carrying the job's marker in
        its environment (children that left the group or outlived the worker)."""
        found: dict[int, psutil.Process] = {}
        if self.is_alive(handle):
            try:
                root = psutil.Process(handle.pid)
                found[root.pid] = root
                found.update((p.pid, p) for p in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        found.update((p.pid, p) for p in job_processes(handle.job_id))
        return list(found.values())

    def _signal_group(self, handle: WorkerHandle, sig: signal.Signals) -> None:
        if not self.is_alive(handle):
            return
        try:
            os.killpg(handle.pid, sig)  # the worker leads its own session, so pgid == pid
        except (ProcessLookupError, PermissionError):
            pass


def job_processes(job_id: str) -> list[psutil.Process]:
    """Live processes whose environment marks them as part of `job_id`."""
    me = os.getpid()
    out = []
    for process in psutil.process_iter(["pid"]):
        if process.pid == me:
            continue
        try:
            if process.environ().get(JOB_ENV) == job_id and process.status() != psutil.STATUS_ZOMBIE:
                out.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out
