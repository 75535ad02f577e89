"""A real sshd on loopback for each test, and a server whose workspace holds its client key
at keys/box."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from forge_mcp.server_process import ServerProcess
from tests.compute.sshd import Sshd, free_port

SERVER_ENV = {"FORGE_TEST_JOB_KINDS": "1"}  # test_job_start and the test job kinds


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    folder = tmp_path / "sshd"
    folder.mkdir()
    daemon = Sshd(folder, free_port()).start()
    try:
        yield daemon
    finally:
        daemon.stop()


def workspace_with_key(tmp_path: Path, sshd: Sshd) -> Path:
    home = tmp_path / "ws"
    (home / "keys").mkdir(parents=True)
    shutil.copy(sshd.client_key, home / "keys" / "box")
    return home


@pytest.fixture
def server(tmp_path: Path, sshd: Sshd) -> Iterator[ServerProcess]:
    with ServerProcess(workspace_with_key(tmp_path, sshd), env=SERVER_ENV) as live:
        yield live
