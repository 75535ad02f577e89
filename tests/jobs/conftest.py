"""A real ForgeApp (store, engine lock, local executor, real worker processes) in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.models import Job
from forge_mcp.settings import load_settings
from tests.polling import until

AppFactory = Callable[..., Awaitable[ForgeApp]]
# The engine tests' timer: a job that sleeps (forge_mcp/jobs/testing_kinds.py), not a benchmark.
SLEEP = "test_sleep"
QUICK = {"seconds": 0.1}
LONG = {"seconds": 600.0}
BENCH_QUICK = {"seconds_per_test": 0.1, "backend": "numpy", "devices": ["cpu"]}


@pytest.fixture(autouse=True)
def test_job_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test kinds on, for the server's settings and (through the environment) its workers."""
    monkeypatch.setenv("FORGE_TEST_JOB_KINDS", "1")


@pytest.fixture
async def forge(tmp_path: Path) -> AsyncIterator[AppFactory]:
    apps: list[ForgeApp] = []

    async def make(**overrides: Any) -> ForgeApp:
        app = ForgeApp(load_settings(home=tmp_path / "ws", **overrides))
        await app.start()
        apps.append(app)
        return app

    yield make
    for app in apps:
        for job in await app.jobs.repo.list(limit=1000):
            if not job.terminal:
                await app.jobs.cancel(job.id)
        await app.stop()


async def running_with_pid(app: ForgeApp, job_id: str) -> Job:
    async def ready() -> bool:
        job = await app.jobs.repo.get(job_id)
        return job.state.value == "RUNNING" and job.pid is not None

    await until(ready, what=f"{job_id} to run")
    return await app.jobs.repo.get(job_id)
