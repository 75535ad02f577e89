"""A ForgeApp in-process with its job engine started (real worker processes), for the flywheel's
jobs: traces_to_dataset runs dataset_prepare's steps in a worker, trace_judge in the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.settings import load_settings


@pytest.fixture
async def engine_app(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    app = ForgeApp(load_settings(home=tmp_path / "ws"))
    await app.start()
    try:
        yield app
    finally:
        for job in await app.jobs.repo.list(limit=1000):
            if not job.terminal:
                await app.jobs.cancel(job.id)
        await app.stop()
