"""Another executor drops in beside the local one without touching the engine: a job runs
on the executor it names, on one of that executor's hosts where it fits, with its executor
and host recorded; its outputs are collected before the publish step; and a restarted
engine finds its worker again through the recorded executor. The other executor is a test
double with two hosts of its own, running its workers through a local executor."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.app import ENGINE_LOCK, ForgeApp
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.engine_state import EngineState
from forge_mcp.jobs.executors.base import Executor, LogChunk, Poll, WorkerHandle
from forge_mcp.jobs.executors.local import LocalExecutor, job_processes
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.models import Job, Progress, Resources
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.states import JobState
from forge_mcp.jobs.submission import Submission
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings
from tests.jobs.conftest import LONG, QUICK, SLEEP
from tests.polling import until

OWNER = Principal("tester", frozenset({"train"}))
ONE_JOB = Capacity(gpu_slots=0, cpu_slots=1, memory_gb=8.0)


class TwoBoxes:
    """An executor named "boxes" with hosts box-1 and box-2 (one CPU job each); the workers
    really run here, through a local executor, under the box's name."""

    name = "boxes"

    def __init__(self, local: LocalExecutor) -> None:
        self.local = local
        self.worker_workspace = local.worker_workspace
        self.collected: list[tuple[str, list[Path]]] = []

    def hosts(self) -> Mapping[str, Capacity]:
        return {"box-1": ONE_JOB, "box-2": ONE_JOB}

    def _here(self, handle: WorkerHandle) -> WorkerHandle:
        return replace(handle, host=self.local.host)

    async def launch(self, job_id: str, run: RunDir, host: str | None) -> WorkerHandle:
        assert host in self.hosts()
        return replace(await self.local.launch(job_id, run, self.local.host), host=host)

    async def poll(self, handle: WorkerHandle) -> Poll:
        return await self.local.poll(self._here(handle))

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        return await self.local.logs(self._here(handle), since, max_bytes)

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        self.collected.append((handle.job_id, list(paths)))

    async def stop(self, handle: WorkerHandle) -> None:
        await self.local.stop(self._here(handle))

    async def kill(self, handle: WorkerHandle) -> None:
        await self.local.kill(self._here(handle))


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    app = ForgeApp(load_settings(home=tmp_path / "ws"))
    async with app.running(engine=False):  # the engines under test supervise
        yield app


def executors(app: ForgeApp) -> tuple[LocalExecutor, TwoBoxes]:
    local = LocalExecutor(app.workspace.root, app.jobs.limits.capacity, app.workspace.import_roots)
    return local, TwoBoxes(LocalExecutor(app.workspace.root, ONE_JOB, app.workspace.import_roots))


def engine_on(app: ForgeApp, by_name: Mapping[str, Executor], publish: Any) -> JobEngine:
    return JobEngine(app.jobs.repo, by_name, app.job_bus, app.jobs.kinds, app.workspace.runs, app.jobs.limits,
                     EngineLock(app.workspace.root / ENGINE_LOCK), app.workspace.scrub, publish)  # fmt: skip


async def test_a_job_runs_on_its_executors_hosts_and_a_restarted_engine_finds_it_there(app: ForgeApp) -> None:
    local, boxes = executors(app)
    published: list[str] = []

    async def publish(job: Job, result: dict[str, Any]) -> dict[str, Any]:
        assert [job_id for job_id, _ in boxes.collected] == [job.id]  # outputs came home first
        published.append(job.id)
        return result

    first = engine_on(app, {local.name: local, boxes.name: boxes}, publish)
    await first.start()
    quick = (await first.submit(SLEEP, QUICK, OWNER.name, executor="boxes")).job_id
    done = await first.wait(quick, 60)
    assert done.state is JobState.SUCCEEDED, done.error
    assert boxes.collected == [(quick, [RunDir(app.workspace.runs, quick).path])] and published == [quick]

    long = [(await first.submit(SLEEP, LONG, OWNER.name, executor="boxes")).job_id for _ in range(2)]
    beside = (await first.submit(SLEEP, LONG, OWNER.name)).job_id  # the default executor: this machine
    for job_id in (*long, beside):
        await until(lambda job_id=job_id: _running_with_pid(first, job_id), what=f"{job_id} to run")
    jobs = [await first.get(job_id, OWNER) for job_id in (*long, beside)]
    assert [j.executor for j in jobs] == ["boxes", "boxes", "local"]
    assert {j.host for j in jobs[:2]} == {"box-1", "box-2"} and jobs[2].host == local.host  # one job per box

    await first.stop()  # the workers run on, as after a server crash
    local, boxes = executors(app)
    second = engine_on(app, {local.name: local, boxes.name: boxes}, publish)
    await second.start()
    try:
        assert sorted(second.supervised()) == sorted((*long, beside))  # adopted through the recorded executors
        for job_id in (*long, beside):
            assert (await second.cancel(job_id, OWNER)).state is JobState.CANCELED
            assert not job_processes(job_id)
    finally:
        await second.stop()


async def _running_with_pid(engine: JobEngine, job_id: str) -> bool:
    job = await engine.get(job_id, OWNER)
    return job.state is JobState.RUNNING and job.pid is not None


def lost_job(executor: str, host: str, gpus: int = 0, memory_gb: float = 1.0) -> Job:
    return Job(id="job_lost", kind=SLEEP, state=JobState.RUNNING, arguments={}, principal=OWNER.name, priority=0,
               resources=Resources(gpus=gpus, memory_gb=memory_gb), attempt=1, max_attempts=2, executor=executor,
               host=host, retry_elsewhere=True, progress=Progress(), created_at=0.0)  # fmt: skip


def test_a_job_whose_host_was_lost_goes_here_first_then_to_the_first_other_host_that_fits(app: ForgeApp) -> None:
    local = LocalExecutor(app.workspace.root, ONE_JOB, app.workspace.import_roots)  # no GPU here, 8 GB
    boxes = TwoBoxes(LocalExecutor(app.workspace.root, ONE_JOB, app.workspace.import_roots))
    submission = Submission(app.jobs.repo, app.job_bus, app.jobs.kinds, app.workspace.runs, app.jobs.limits,
                            {local.name: local, boxes.name: boxes}, local.name, EngineState())  # fmt: skip
    assert submission.elsewhere(lost_job("boxes", "box-2")) == ("local", None)
    assert submission.elsewhere(lost_job("local", local.host)) == ("boxes", "box-1")
    assert submission.elsewhere(lost_job("boxes", "box-1", gpus=1)) is None  # no GPU anywhere else
    assert submission.elsewhere(lost_job("boxes", "box-1", memory_gb=16.0)) is None  # 8 GB everywhere else
