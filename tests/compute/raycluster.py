"""A real one-machine Ray cluster for the tests: `ray start --head --block` on 127.0.0.1 with
the dashboard off, in its own session; stopping it ends every process it started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from tests.compute.sshd import free_port
from tests.polling import poll_until

START_TIMEOUT_S = 120.0
STOP_GRACE_S = 5.0
STARTED = "Ray runtime started"


class RayCluster:
    def __init__(self, cpus: int = 2) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus = cpus
        # Ray's sockets live under its temp folder, and a socket path may not exceed 107 bytes.
        self.temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
        self.log = self.temp / "head.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RayCluster:
        ray = Path(sys.executable).with_name("ray")
        command = [str(ray), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                   "--include-dashboard=false", f"--num-cpus={self.cpus}", "--num-gpus=0",
                   f"--ray-client-server-port={free_port()}", "--object-store-memory=100000000",
                   f"--temp-dir={self.temp}", "--disable-usage-stats"]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})  # fmt: skip
        process = self.process
        try:
            poll_until(lambda: STARTED in self.log.read_text(errors="replace") or process.poll() is not None,
                       START_TIMEOUT_S, "ray start")  # fmt: skip
        except AssertionError:
            self.stop()
            raise
        if process.poll() is not None:
            said = self.log.read_text(errors="replace")[-3000:]
            self.stop()
            raise RuntimeError(f"ray start exited:\n{said}")
        return self

    def stop(self) -> None:
        """Ends the head and every process of this cluster: those of its session, and the workers
        the raylet started, which name the cluster's temp folder on their command lines."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        leftovers = []
        for process in psutil.process_iter(["cmdline"]):
            if any(str(self.temp) in part for part in process.info["cmdline"] or ()):
                leftovers.append(process)
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
        psutil.wait_procs(leftovers, timeout=10)
        shutil.rmtree(self.temp, ignore_errors=True)
