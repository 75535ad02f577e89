"""SystemService called in-process, as the operator and workflows will call it: the overview
counts the caller's jobs and names the newest benchmark's job only to its owner (or an admin),
and a benchmark's devices are checked before anything is queued."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.repository import dumps
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from forge_mcp.system.devices import resolve_devices

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))


async def test_the_newest_benchmark_is_everyones_but_its_job_only_its_owners(app: ForgeApp) -> None:
    handle = await app.services.system.benchmark(ALICE, 0.1, ["cpu"], "numpy")
    await app.jobs.repo.transition(handle.job_id, JobState.RUNNING)
    await app.jobs.repo.transition(handle.job_id, JobState.SUCCEEDED, result=dumps({"matmul": []}))
    mine, theirs, admins = [await app.services.system.overview(p) for p in (ALICE, BOB, ADMIN)]
    assert mine.latest_benchmark is not None and mine.latest_benchmark.job_id == handle.job_id
    assert theirs.latest_benchmark is not None and theirs.latest_benchmark.job_id is None
    assert theirs.latest_benchmark.result == {"matmul": []}
    assert admins.latest_benchmark is not None and admins.latest_benchmark.job_id == handle.job_id
    assert mine.jobs == {"SUCCEEDED": 1} and theirs.jobs == {}
    assert {t.name for t in mine.toolsets} >= {"core", "jobs", "datasets", "training"}


async def test_a_benchmark_is_queued_as_the_callers_with_explicit_devices(app: ForgeApp) -> None:
    handle = await app.services.system.benchmark(BOB, 0.5, None, "auto", priority=3)
    job = await app.jobs.repo.get(handle.job_id)
    gpus = app.jobs.limits.capacity.gpu_slots
    assert (job.principal, job.kind, job.priority) == ("bob", "system_benchmark", 3)
    assert job.arguments["devices"] == ["cpu", *(f"cuda:{i}" for i in range(gpus))]


def test_devices_are_named_explicitly_or_refused() -> None:
    assert resolve_devices(["cpu", "cuda", "cuda:1"], 2) == ["cpu", "cuda:0", "cuda:1"]
    with pytest.raises(InvalidArguments, match="'cuda' asked for, but this server has no GPU"):
        resolve_devices(["cuda"], 0)
    with pytest.raises(InvalidArguments, match="'tpu' is not a device"):
        resolve_devices(["tpu"], 0)
    with pytest.raises(InvalidArguments, match="the list is empty"):
        resolve_devices([], 0)
