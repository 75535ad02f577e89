"""TrainingService called in-process, as the operator and workflows will call it: a run that
cannot be planned is refused before anything is queued."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.security.principal import Principal

ALICE = Principal("alice", frozenset({"train"}))


async def test_a_run_that_cannot_be_planned_queues_nothing(app: ForgeApp) -> None:
    (app.settings.home / "models" / "empty").mkdir(parents=True)
    with pytest.raises(InvalidArguments, match="spec.base_model"):
        await app.services.training.start(ALICE, {"base_model": "models/missing", "dataset": "d"})
    with pytest.raises(NotFound, match="dataset: no dataset 'd'"):
        await app.services.training.plan({"base_model": "models/empty", "dataset": "d"})
    assert await app.jobs.repo.list(limit=10) == []
