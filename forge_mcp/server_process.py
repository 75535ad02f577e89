"""Start `forge-mcp serve` as a child process and stop it cleanly: used by `make demo`,
the benchmarks and the end-to-end tests, so all of them drive the real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
POLL_S = 0.05


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """`with ServerProcess(home) as server: server.url` — a live server on a free loopback port."""

    def __init__(
        self,
        home: Path,
        *,
        args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.home = home
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path or home.parent / f"{home.name}-server.log"
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        ready = Path(tempfile.mkdtemp(prefix="forge-ready-")) / "url"
        command = [
            sys.executable, "-m", "forge_mcp", "--home", str(self.home),
            "serve", "--port", "0", "--ready-file", str(ready), *self.args,
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if ready.exists() and ready.read_text():
                self.url = ready.read_text().strip()
                return self.url
            if self.process.poll() is not None:
                raise ServerStartError(f"forge-mcp serve exited with {self.process.returncode}: {self.log_tail()}")
            time.sleep(POLL_S)
        self.stop()
        raise ServerStartError(f"forge-mcp serve was not ready within {READY_TIMEOUT_S:.0f}s: {self.log_tail()}")

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        return int(self.process.returncode)

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
