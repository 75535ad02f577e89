"""A slow executor never holds up the engine: while a poll is stuck (a test double that
runs real workers through the local executor but answers `poll` only when the test lets it),
job_status (engine.get), job_cancel and submissions answer, admission goes on, and the
cancel's SIGTERM reaches the worker; the job settles once the poll answers. Also: a job whose
recorded executor is no longer configured ends FAILED, naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.app import ENGINE_LOCK, ForgeApp
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.executors.base import Executor, LogChunk, Poll, WorkerHandle
from forge_mcp.jobs.executors.local import LocalExecutor, job_processes
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings
from tests.jobs.conftest import LONG, QUICK, SLEEP
from tests.polling import until

OWNER = Principal("tester", frozenset({"train"}))
ANSWER_S = 5.0  # bound on each call made while the poll is stuck (it never comes unstuck by itself)


class GatedExecutor:
    """The local executor, except that `poll` waits at a gate the test opens and closes."""

    def __init__(self, local: LocalExecutor) -> None:
        self.local = local
        self.name = local.name
        self.worker_workspace = local.worker_workspace
        self.open = asyncio.Event()
        self.open.set()
        self.stuck = asyncio.Event()  # set while a poll waits at the closed gate

    def hosts(self) -> Mapping[str, Capacity]:
        return self.local.hosts()

    async def launch(self, job_id: str, run: RunDir, host: str | None) -> WorkerHandle:
        return await self.local.launch(job_id, run, host)

    async def poll(self, handle: WorkerHandle) -> Poll:
        if not self.open.is_set():
            self.stuck.set()
            await self.open.wait()
        return await self.local.poll(handle)

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        return await self.local.logs(handle, since, max_bytes)

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        await self.local.collect(handle, paths)

    async def stop(self, handle: WorkerHandle) -> None:
        await self.local.stop(handle)

    async def kill(self, handle: WorkerHandle) -> None:
        await self.local.kill(handle)


async def as_is(job: Job, result: dict[str, Any]) -> dict[str, Any]:
    return result  # the test kinds publish nothing


def engine_on(app: ForgeApp, executors: Mapping[str, Executor]) -> JobEngine:
    """An engine over the app's store and catalog, with these executors instead of its own."""
    return JobEngine(app.jobs.repo, executors, app.job_bus, app.jobs.kinds, app.workspace.runs, app.jobs.limits,
                     EngineLock(app.workspace.root / ENGINE_LOCK), app.workspace.scrub, as_is)  # fmt: skip


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    app = ForgeApp(load_settings(home=tmp_path / "ws", cpu_job_slots=2))
    async with app.running(engine=False):  # the engines under test supervise
        yield app


async def answers(call: Any) -> Any:
    async with asyncio.timeout(ANSWER_S):
        return await call


async def state_of(engine: JobEngine, job_id: str) -> JobState:
    return (await engine.get(job_id, OWNER)).state


async def test_a_stuck_poll_holds_up_neither_status_nor_cancel_nor_submission(app: ForgeApp) -> None:
    gated = GatedExecutor(LocalExecutor(app.workspace.root, app.jobs.limits.capacity, app.workspace.import_roots))
    engine = engine_on(app, {gated.name: gated})
    await engine.start()
    try:
        stuck_job = (await engine.submit(SLEEP, LONG, OWNER.name)).job_id
        await until(lambda: _running_with_pid(engine, stuck_job), what="the first job to run")
        gated.open.clear()
        await answers(gated.stuck.wait())  # the engine's poll now waits at the gate, and will until opened

        # job_status, a submission, and admission beside the stuck poll (two CPU slots).
        assert await answers(state_of(engine, stuck_job)) is JobState.RUNNING
        second = (await answers(engine.submit(SLEEP, LONG, OWNER.name))).job_id
        await until(lambda: _running_with_pid(engine, second), what="the second job to be admitted and launched")
        # job_cancel of a queued job (both slots are taken): done at once.
        queued = (await answers(engine.submit(SLEEP, QUICK, OWNER.name))).job_id
        assert (await answers(engine.cancel(queued, OWNER))).state is JobState.CANCELED

        # job_cancel of the running job: its SIGTERM goes out now; the job settles once a poll answers.
        stuck_pid = (await engine.get(stuck_job, OWNER)).pid
        canceling = asyncio.create_task(engine.cancel(stuck_job, OWNER))
        await until(lambda: _gone(stuck_job), what="the canceled worker to exit")
        job = await answers(engine.get(stuck_job, OWNER))
        assert job.state is JobState.RUNNING and job.cancel_requested and job.pid == stuck_pid
        assert not canceling.done()

        gated.open.set()
        canceled = await answers(canceling)
        assert canceled.state is JobState.CANCELED and canceled.reason == C.REASON_CANCELED
        assert (await answers(engine.cancel(second, OWNER))).state is JobState.CANCELED
        assert not job_processes(stuck_job) and not job_processes(second)
    finally:
        gated.open.set()
        await engine.stop()


async def test_a_job_whose_executor_is_gone_fails_naming_it(app: ForgeApp) -> None:
    local = LocalExecutor(app.workspace.root, app.jobs.limits.capacity, app.workspace.import_roots)
    first = engine_on(app, {local.name: local})
    await first.start()
    running = (await first.submit(SLEEP, LONG, OWNER.name)).job_id
    await until(lambda: _running_with_pid(first, running), what="the job to run")
    await first.stop()  # the worker keeps running, as after a server crash
    with pytest.raises(InvalidArguments, match="executor 'ssh' is not configured on this server"):
        await first.submit(SLEEP, QUICK, OWNER.name, executor="ssh")
    queued = (await first.submit(SLEEP, QUICK, OWNER.name)).job_id
    # The server comes back configured differently: those jobs ran (or were to run) on "ssh".
    for job_id in (running, queued):
        await app.jobs.repo.update(job_id, executor="ssh")
    other = GatedExecutor(local)
    other.name = "gpu-box"
    second = engine_on(app, {other.name: other})
    await second.start()
    try:
        for job_id in (running, queued):
            job = await answers(second.wait(job_id, ANSWER_S))
            assert job.state is JobState.FAILED and job.reason == C.REASON_EXECUTOR_UNAVAILABLE
            assert "executor 'ssh', which this server does not have configured (it has: gpu-box)" in (job.error or "")
    finally:
        await second.stop()
        for process in job_processes(running):  # this server could not reach it: the test cleans up
            process.kill()


async def _running_with_pid(engine: JobEngine, job_id: str) -> bool:
    job = await engine.get(job_id, OWNER)
    return job.state is JobState.RUNNING and job.pid is not None


async def _gone(job_id: str) -> bool:
    return not await asyncio.to_thread(job_processes, job_id)
