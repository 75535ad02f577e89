"""The local executor: each worker is `python -m forge_mcp.worker <run folder>` in a new
session (its own process group) on this machine, its stdout and stderr going to the run's
worker.log. The worker does not depend on the server: it survives a server crash and is
adopted again by the restarted server. A job of a warm kind may instead take a worker started
ahead of it (warm_pool.py), which is then the same in every one of those respects. Process
scans and reaping block, so they run in a thread, off the event loop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
from pydantic import ValidationError

from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.events import EventTail
from forge_mcp.jobs.executors.base import JOB_ENV, LogChunk, Poll, WorkerHandle, read_log, worker_env
from forge_mcp.jobs.executors.warm_pool import Claimed, WarmPool
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace

KILL_WAIT_S = 5.0  # how long kill waits for the killed processes to be gone


class LocalExecutor:
    name = "local"

    def __init__(
        self, home: Path, capacity: Capacity, import_roots: tuple[Path, ...] = (), warm: WarmPool | None = None
    ) -> None:
        # The worker re-checks client paths against the same root and import roots as the server.
        self.worker_workspace = WorkerWorkspace(root=home, import_roots=import_roots)
        self.host = socket.gethostname()
        self.capacity = capacity
        self.warm = warm  # workers started ahead of their job; the engine starts and closes the pool
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # workers this process started, until reaped
        self._exit_codes: dict[int, int] = {}  # reaped workers' exit statuses, until a poll reports them
        self._tails: dict[str, EventTail] = {}  # job id -> how far its events were read

    def hosts(self) -> Mapping[str, Capacity]:
        return {self.host: self.capacity}

    async def launch(self, job_id: str, run: RunDir, host: str | None) -> WorkerHandle:
        handle = await asyncio.to_thread(self._start, job_id, run, host or self.host)
        self._tails[job_id] = EventTail(run.events)  # a new attempt's events start a new file
        return handle

    async def poll(self, handle: WorkerHandle) -> Poll:
        alive = await asyncio.to_thread(self._alive, handle)
        exit_code = None if alive else self._exit_codes.pop(handle.pid, None)
        # Read after the liveness check: once the worker is gone, everything it wrote is in the file.
        tail = self._tails.setdefault(handle.job_id, EventTail(handle.run.events))
        events = await asyncio.to_thread(tail.read)
        if not alive:
            self._tails.pop(handle.job_id, None)
        return Poll(alive=alive, exit_code=exit_code, events=tuple(events))

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        return await asyncio.to_thread(read_log, handle.run.log, since, max_bytes)

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        """Nothing to bring: the worker wrote into the workspace itself."""

    async def stop(self, handle: WorkerHandle) -> None:
        await asyncio.to_thread(self._signal_group, handle, signal.SIGTERM)

    async def kill(self, handle: WorkerHandle) -> None:
        await asyncio.to_thread(self._kill, handle)

    # blocking parts, run in a thread ---------------------------------------------------

    def command(self, run: RunDir, host: str) -> list[str]:
        """The process that runs the job: here, the worker itself."""
        return [sys.executable, "-m", "forge_mcp.worker", str(run.path)]

    def runs_here(self, handle: WorkerHandle) -> bool:
        """Whether the handle's process is one of this machine's (another host's is not ours to see)."""
        return handle.host == self.host

    def _start(self, job_id: str, run: RunDir, host: str) -> WorkerHandle:
        warm = self._take_warm(job_id, run)
        if warm is not None:
            self._children[warm.process.pid] = warm.process
            return WorkerHandle(job_id=job_id, run=run, host=host, pid=warm.process.pid, started_at=warm.started_at)
        with run.log.open("ab") as log:
            process = subprocess.Popen(
                self.command(run, host),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=worker_env(job_id),
                cwd=run.path,
                start_new_session=True,
            )
        self._children[process.pid] = process
        try:
            started = psutil.Process(process.pid).create_time()
        except psutil.NoSuchProcess:
            started = 0.0
        return WorkerHandle(job_id=job_id, run=run, host=host, pid=process.pid, started_at=started)

    def _take_warm(self, job_id: str, run: RunDir) -> Claimed | None:
        if self.warm is None or not self.warm.size:
            return None
        try:
            kind = JobSpec.read(run).kind  # the launcher wrote it before the launch
        except (OSError, ValidationError):
            return None  # a cold worker reports what is wrong with the spec
        return self.warm.take(kind, run, job_id)

    def _alive(self, handle: WorkerHandle) -> bool:
        """Reaps a worker this process started once it is gone, keeping its exit status."""
        if handle.pid <= 0 or not self.runs_here(handle):
            return False  # never started, or another machine's process: not ours to see
        child = self._children.get(handle.pid)
        if child is not None:
            if child.poll() is None:
                return True
            self._exit_codes[handle.pid] = child.returncode
            self._children.pop(handle.pid, None)  # reaped: no zombie left behind
            return False
        try:
            process = psutil.Process(handle.pid)
            if abs(process.create_time() - handle.started_at) > 1.0:
                return False  # the pid now belongs to another process
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def _kill(self, handle: WorkerHandle) -> None:
        members = self._members(handle)
        self._signal_group(handle, signal.SIGKILL)
        for process in members:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        # A worker this process started is reaped through its Popen, which keeps its exit status
        # (psutil would reap it first, and the status would read as 0).
        child = self._children.get(handle.pid)
        psutil.wait_procs([p for p in members if child is None or p.pid != child.pid], timeout=KILL_WAIT_S)
        if child is not None:
            try:
                child.wait(KILL_WAIT_S)
            except subprocess.TimeoutExpired:
                pass
        self._alive(handle)  # reap our own child if it was one

    def _members(self, handle: WorkerHandle) -> list[psutil.Process]:
        """The worker, its descendants, and any process still carrying the job's marker in
        its environment (children that left the group or outlived the worker)."""
        found: dict[int, psutil.Process] = {}
        if self._alive(handle):
            try:
                root = psutil.Process(handle.pid)
                found[root.pid] = root
                found.update((p.pid, p) for p in root.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        found.update((p.pid, p) for p in job_processes(handle.job_id))
        return list(found.values())

    def _signal_group(self, handle: WorkerHandle, sig: signal.Signals) -> None:
        if not self._alive(handle):
            return
        try:
            os.killpg(handle.pid, sig)  # the worker leads its own session, so pgid == pid
        except (ProcessLookupError, PermissionError):
            pass


def job_processes(job_id: str) -> list[psutil.Process]:
    """Live processes on this machine whose environment marks them as part of `job_id`."""
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
