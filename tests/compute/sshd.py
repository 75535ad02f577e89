"""A real OpenSSH server on loopback for the SSH tests: Debian's openssh-server, started on a
free port with a host key and an authorized client key generated for the test, logging in
as the user running the tests. Skipped, saying why, where sshd is not installed (.ci/run
installs it)."""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.polling import poll_until

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
START_TIMEOUT_S = 10.0


def sshd_binary() -> str:
    found = shutil.which("sshd") or next((p for p in SSHD_CANDIDATES if Path(p).is_file()), None)
    if found is None:
        pytest.skip("no sshd here: install Debian's openssh-server (apt-get install openssh-server; .ci/run does)")
    return found


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sshd:
    folder: Path
    port: int
    user: str = field(default_factory=getpass.getuser)
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_key(self) -> Path:
        return self.folder / "client_ed25519"

    @property
    def host_public_key(self) -> str:
        """'ssh-ed25519 AAAA…', as the host's .pub file has it (comment dropped)."""
        return " ".join((self.folder / "host_ed25519.pub").read_text().split()[:2])

    def host_fingerprint(self) -> str:
        result = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.folder / "host_ed25519.pub")],
                                capture_output=True, text=True, check=True)  # fmt: skip
        return result.stdout.split()[1]  # "256 SHA256:… comment (ED25519)"

    def start(self) -> Sshd:
        binary = sshd_binary()
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation, when run as root
        if not (self.folder / "host_ed25519").exists():
            keygen(self.folder / "host_ed25519")
            keygen(self.client_key)
            shutil.copy(self.folder / "client_ed25519.pub", self.folder / "authorized_keys")
        config = self.folder / "sshd_config"
        config.write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.folder / 'host_ed25519'}\n"
            f"PidFile {self.folder / 'sshd.pid'}\nAuthorizedKeysFile {self.folder / 'authorized_keys'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nUsePAM no\n"
            f"PermitRootLogin prohibit-password\nStrictModes no\nAllowUsers {self.user}\n"
            "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        log = (self.folder / "sshd.log").open("ab")
        process = self.process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)

        def listening() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited {process.returncode}: {(self.folder / 'sshd.log').read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        poll_until(listening, START_TIMEOUT_S, f"sshd to listen on {self.port}")
        return self

    def stop(self, *, sessions_too: bool = False) -> None:
        """Stop listening; with `sessions_too`, end the open connections as well (each is a
        process of its own, which outlives the listener otherwise)."""
        if self.process is not None and self.process.poll() is None:
            sessions = psutil.Process(self.process.pid).children(recursive=True) if sessions_too else []
            self.process.terminate()
            self.process.wait(10)
            for session in sessions:
                with contextlib.suppress(psutil.NoSuchProcess):
                    session.kill()
        self.process = None

    def change_host_key(self) -> None:
        """The host was reinstalled: same address, new host key."""
        self.stop()
        for suffix in ("", ".pub"):
            (self.folder / f"host_ed25519{suffix}").unlink()
        keygen(self.folder / "host_ed25519")
        self.start()
