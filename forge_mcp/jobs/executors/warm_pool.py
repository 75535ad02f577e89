"""Warm workers: local job workers started before their job, so that a training job does not
wait 4-5 s for torch, transformers, peft and trl to import before its first step.

Each is `python -m forge_mcp.jobs.warm_worker <preload>` (forge_mcp/jobs/warm_worker.py), started
as the local executor starts a cold worker: its own session (pgid == pid), the worker's
environment less FORGE_JOB_ID, its output in the workspace's warm-workers.log. Its stdin and
stdout are pipes to this process: it writes one "ready" line once its imports are done, and
taking it writes the job's claim and closes the pipes. It then runs that job and no other, and
is watched, stopped, killed and re-adopted by pid and start time like any worker. An idle one
whose server stops or dies reads the end of its stdin and exits, so none outlives the server
it waited for.

Only kinds marked `warm` (JobKind.warm) take one, and only one that is ready: it imports at
idle priority, which on a busy machine could take longer than a cold start. Another kind, or a
job that finds none ready, starts cold. Each take starts a replacement behind it, in a thread.
The pool's methods block (process starts and waits): the executor calls them from its threads,
never the event loop.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import psutil

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.executors.base import worker_env
from forge_mcp.jobs.run_dir import RunDir

log = logging.getLogger("forge_mcp.jobs")
SEE_LOG = f"{C.WARM_LOG} in the workspace says why"


@dataclass(frozen=True)
class Claimed:
    """A warm worker now running a job."""

    process: subprocess.Popen[bytes]
    started_at: float  # its creation time, as psutil reads it: with the pid, how it is found again


@dataclass
class _Idle:
    process: subprocess.Popen[bytes]
    ready: bool = False  # its ready line was read

    def check(self) -> bool:
        """Ready: its imports done. Never blocks."""
        pipe = self.process.stdout
        if not self.ready and pipe is not None and select.select([pipe], [], [], 0)[0]:
            self.ready = os.read(pipe.fileno(), len(C.WARM_READY)) == C.WARM_READY  # b"": it ended before it was ready
        return self.ready


class WarmPool:
    def __init__(self, size: int, kinds: Collection[str], log_file: Path, preload: str = C.WARM_PRELOAD) -> None:
        """`size` workers kept idle (0: none); `kinds`, the job kinds that take one; `log_file`, where
        idle workers write (inside the workspace); `preload`, what they import (warm_worker.PRELOADS)."""
        self.size = size if kinds else 0
        self.kinds = frozenset(kinds)
        self.log_file = log_file
        self.preload = preload
        self._idle: deque[_Idle] = deque()  # oldest first
        self._lock = threading.Lock()  # guards _idle and _open
        self._filling = threading.Lock()  # one refill at a time, so the pool never grows past its size
        self._open = False

    def start(self) -> None:
        """Start warming (in a thread); called when the engine begins to supervise the workspace."""
        with self._lock:
            self._open = True
        self._refill()

    def take(self, kind: str, run: RunDir, job_id: str) -> Claimed | None:
        """A ready worker, now running `job_id` from `run` (whose job.json is written); None when
        the kind is not warm or none is ready. One that died while idle is dropped, never handed
        a job, and replaced."""
        if kind not in self.kinds:
            return None
        claimed = None
        with self._lock:
            for idle in list(self._idle):
                if idle.process.poll() is not None:
                    log.warning("warm worker %d ended while idle (exit %s); %s", idle.process.pid,
                                idle.process.returncode, SEE_LOG)  # fmt: skip
                    self._idle.remove(idle)
                    _stop(idle.process)
                elif idle.check():
                    self._idle.remove(idle)
                    claimed = _claim(idle.process, run, job_id)
                    if claimed is not None:
                        break
        self._refill()
        return claimed

    def close(self) -> None:
        """Stop every idle worker and start no more; the taken ones run on."""
        with self._lock:
            self._open = False
            idle, self._idle = list(self._idle), deque()
        for each in idle:
            _stop(each.process)
        with self._filling:  # a refill under way stops what it started once it sees the pool closed
            pass

    def idle_pids(self) -> list[int]:
        """The idle workers, ready or still importing (one that died since is dropped at the next take)."""
        with self._lock:
            return [idle.process.pid for idle in self._idle]

    def ready_pids(self) -> list[int]:
        """The idle workers whose imports are done."""
        with self._lock:
            return [idle.process.pid for idle in self._idle if idle.check()]

    # blocking parts ------------------------------------------------------------------

    def _refill(self) -> None:
        with self._lock:
            if not self._open or len(self._idle) >= self.size:
                return
        threading.Thread(target=self._fill, name="forge-warm-workers", daemon=True).start()

    def _fill(self) -> None:
        with self._filling:
            while True:
                with self._lock:
                    if not self._open or len(self._idle) >= self.size:
                        return
                try:
                    process = self._spawn()
                except OSError as exc:  # not retried here: the next take tries again
                    log.error("could not start a warm worker: %s", exc)
                    return
                with self._lock:
                    if self._open:
                        self._idle.append(_Idle(process))
                        continue
                _stop(process)  # closed while it started
                return

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_file.open("ab") as output:
            return subprocess.Popen(
                [sys.executable, "-m", "forge_mcp.jobs.warm_worker", self.preload],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=output,
                env=worker_env(None),
                cwd=self.log_file.parent,
                start_new_session=True,
            )


def _claim(process: subprocess.Popen[bytes], run: RunDir, job_id: str) -> Claimed | None:
    try:
        started_at = psutil.Process(process.pid).create_time()
        assert process.stdin is not None
        process.stdin.write(json.dumps({"run": str(run.path), "job_id": job_id}).encode() + b"\n")
        _close_pipes(process)  # one job per worker: nothing more goes either way
    except (OSError, psutil.NoSuchProcess):  # it died just now: a broken pipe
        log.warning("warm worker %d ended while idle; %s", process.pid, SEE_LOG)
        _stop(process)
        return None
    return Claimed(process=process, started_at=started_at)


def _close_pipes(process: subprocess.Popen[bytes]) -> None:
    for pipe in (process.stdin, process.stdout):
        if pipe is not None and not pipe.closed:
            try:
                pipe.close()
            except OSError:
                pass


def _stop(process: subprocess.Popen[bytes]) -> None:
    """An idle worker has no job to wind down: its group is killed and the process reaped."""
    _close_pipes(process)
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        process.wait(C.WARM_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        log.warning("warm worker %d did not end within %.0f s of SIGKILL", process.pid, C.WARM_STOP_WAIT_S)
