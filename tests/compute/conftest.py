"""A real sshd on loopback for each test, and a server whose workspace holds its client key
at keys/box."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.compute.sshd import Sshd, free_port
from tests.polling import until

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


async def running(client: Client, job_id: str, timeout_s: float = 60) -> dict[str, Any]:
    """The job's status once its worker (or an executor's driver) runs and has a pid."""
    status: dict[str, Any] = {}

    async def started() -> bool:
        status.update((await client.call_tool("job_status", {"job_id": job_id})).structured_content)
        return status["state"] == "RUNNING" and bool(status.get("pid"))

    await until(started, timeout_s=timeout_s, what=f"job {job_id} to run")
    return status
