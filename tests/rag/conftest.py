"""A ForgeApp in process with its job engine started (rag_index runs in a real worker), the
tiny model copied into its workspace as the embedding model, and helpers to build an index."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings

MODEL = "models/tiny"  # where the tiny model is copied in each workspace


@pytest.fixture
async def rag_app(tmp_path: Path, tiny_model: Path) -> AsyncIterator[ForgeApp]:
    app = ForgeApp(load_settings(home=tmp_path / "ws", log_level="WARNING"))
    await app.start()
    shutil.copytree(tiny_model, app.workspace.root / MODEL)
    try:
        yield app
    finally:
        for job in await app.jobs.repo.list(limit=1000):
            if not job.terminal:
                await app.jobs.cancel(job.id)
        await app.stop()


async def build(app: ForgeApp, index: str, **arguments: Any) -> dict[str, Any]:
    """rag_index through the service, waited for; the published result (it must succeed)."""
    handle = await app.services.rag.index(Principal.local(), index, **arguments)
    job = await app.jobs.wait(handle.job_id, 240)
    assert job.state.value == "SUCCEEDED", job.error
    assert job.result is not None
    return job.result
