"""Warm workers (forge_mcp/jobs/executors/warm_pool.py): a job takes a worker started before
it, and a fresh one warms behind; such a job is cancelled, killed and outlives its server
like any other; an idle one never outlives its server, and one that died idle is replaced.

The suite runs with warm workers off (tests/conftest.py); these tests turn them on. Most warm
with no imports (warm_preload "none") and run the cheap test kinds; one trains the tiny model
through a worker that imported the training stack."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import psutil

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.jobs.constants import WARM_LOG
from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from forge_mcp.server_process import ServerProcess
from forge_mcp.settings import load_settings
from tests.jobs.conftest import BENCH_QUICK, LONG, QUICK, SLEEP, AppFactory, running_with_pid
from tests.polling import poll_until, until

LIGHT = {"warm_workers": 1, "warm_preload": "none"}
WARM_TIMEOUT_S = 120.0  # a worker importing torch on a loaded machine


async def ready_worker(app: ForgeApp, besides: int = 0) -> int:
    """The pid of an idle warm worker that finished its imports (other than `besides`)."""
    assert app.jobs.warm is not None
    found: list[int] = []

    async def ready() -> bool:
        found[:] = [pid for pid in app.jobs.warm.ready_pids() if pid != besides]
        return bool(found)

    await until(ready, WARM_TIMEOUT_S, "a warm worker to be ready")
    return found[0]


def started_event(app: ForgeApp, job_id: str) -> dict:
    lines = app.workspace.run(job_id).events.read_text().splitlines()
    return next(e for e in map(json.loads, lines) if e["type"] == "started")


def session_nice(pid: int) -> int | None:
    """The nice of the process's session (its Linux autogroup); None where the kernel has none."""
    try:
        return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])
    except (OSError, ValueError):
        return None


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_the_next_job_takes_the_warm_worker_and_a_fresh_one_warms_behind(forge: AppFactory) -> None:
    app = await forge(**LIGHT)
    warm = await ready_worker(app)
    assert session_nice(warm) in (19, None)  # idle, it yields the CPU to every other session
    handle = await app.jobs.submit(SLEEP, QUICK, "tester")
    job = await app.jobs.wait(handle.job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.pid == warm and started_event(app, job.id)["warm"] is True
    assert "(warm start)" in app.workspace.run(job.id).log.read_text()
    fresh = await ready_worker(app, besides=warm)
    assert fresh != warm and gone(warm)
    # A kind that imports nothing heavy starts cold, and leaves the warm worker waiting.
    cold = await app.jobs.wait((await app.jobs.submit("system_benchmark", BENCH_QUICK, "tester")).job_id, 60)
    assert cold.state is JobState.SUCCEEDED, cold.error
    assert cold.pid != fresh and app.jobs.warm.idle_pids() == [fresh] and started_event(app, cold.id)["warm"] is False


async def test_a_job_never_takes_a_worker_still_importing(forge: AppFactory) -> None:
    app = await forge(warm_workers=1)  # the training stack: seconds of imports, at idle priority
    await until(lambda: _started(app), 30, "the warm worker to start")
    [importing] = app.jobs.warm.idle_pids()
    job = await app.jobs.wait((await app.jobs.submit(SLEEP, QUICK, "tester")).job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.pid != importing and started_event(app, job.id)["warm"] is False
    assert app.jobs.warm.idle_pids() == [importing]  # still warming, for a later job


async def _started(app: ForgeApp) -> bool:
    return bool(app.jobs.warm.idle_pids())


async def test_cancelling_a_job_on_a_warm_worker_leaves_no_process(forge: AppFactory) -> None:
    app = await forge(**LIGHT)
    warm = await ready_worker(app)
    handle = await app.jobs.submit("test_spawn", {"child_seconds": 600, "new_session": True, "wait_s": 600}, "tester")
    job = await running_with_pid(app, handle.job_id)
    assert job.pid == warm

    async def spawned() -> bool:
        return "grandchild" in ((await app.jobs.repo.get(job.id)).progress.message or "")

    await until(spawned, what="the grandchild to start")
    grandchild = int((await app.jobs.repo.get(job.id)).progress.message.split()[-1])
    assert {p.pid for p in job_processes(job.id)} == {grandchild}  # FORGE_JOB_ID, set after the worker's exec, is inherited
    assert os.getpgid(warm) == warm  # its own group, so the engine's killpg reaches it
    assert session_nice(warm) in (0, None)  # the job runs at normal priority
    canceled = await app.jobs.cancel(job.id)
    assert canceled.state is JobState.CANCELED
    assert gone(warm) and gone(grandchild) and not job_processes(job.id)


async def test_no_idle_warm_worker_outlives_its_engine(tmp_path: Path) -> None:
    app = ForgeApp(load_settings(home=tmp_path / "ws", **LIGHT))
    await app.start()
    try:
        warm = await ready_worker(app)
        running = await app.jobs.submit(SLEEP, LONG, "tester")
        taken = await running_with_pid(app, running.job_id)
        assert taken.pid == warm
        behind = await ready_worker(app, besides=warm)
    finally:
        await app.stop()
    assert gone(behind) and app.jobs.warm.idle_pids() == []
    assert not gone(warm), "the job's worker runs on, for the next server to adopt"
    again = ForgeApp(load_settings(home=tmp_path / "ws", **LIGHT))
    async with again.running():
        assert again.jobs.supervised() == [running.job_id]  # adopted by pid and start time
        assert (await again.jobs.cancel(running.job_id)).state is JobState.CANCELED
        assert gone(warm)


def test_an_idle_warm_worker_exits_when_its_server_dies(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    env = {"FORGE_WARM_WORKERS": "1", "FORGE_WARM_PRELOAD": "none", TEST_KINDS_ENV: "1"}
    with ServerProcess(home, env=env) as live:
        assert live.process is not None
        server = psutil.Process(live.process.pid)

        def warm_children() -> list[psutil.Process]:
            return [p for p in server.children() if "forge_mcp.jobs.warm_worker" in " ".join(p.cmdline())]

        def ready() -> bool:
            log = home / WARM_LOG
            return len(warm_children()) == 1 and log.exists() and "ready" in log.read_text()

        poll_until(ready, WARM_TIMEOUT_S, "the server's warm worker")
        [warm] = warm_children()
        live.process.send_signal(signal.SIGKILL)
        live.process.wait(30)
        assert not psutil.wait_procs([warm], timeout=30)[1], "the warm worker exits once its server's pipe closes"


async def test_a_warm_worker_that_died_idle_is_replaced_and_the_job_still_runs(forge: AppFactory) -> None:
    app = await forge(**LIGHT)
    dead = await ready_worker(app)
    os.kill(dead, signal.SIGKILL)
    poll_until(lambda: gone(dead), 10, "the warm worker to die")
    job = await app.jobs.wait((await app.jobs.submit(SLEEP, QUICK, "tester")).job_id, 60)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.pid != dead
    replacement = await ready_worker(app, besides=dead)
    assert replacement not in (dead, job.pid)


async def test_a_training_job_runs_in_a_warm_worker(forge: AppFactory, tiny_model: Path) -> None:
    app = await forge(warm_workers=1)  # the training stack imported ahead, as a user's server does
    shutil.copytree(tiny_model, app.workspace.root / "models" / "tiny")
    rows = [{"messages": [{"role": "user", "content": f"Greet {i}."}, {"role": "assistant", "content": f"Hello {i}!"}]}
            for i in range(16)]  # fmt: skip
    (app.workspace.root / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    await app.services.datasets.import_("d.jsonl", "d")
    warm = await ready_worker(app)
    handle = await app.services.training.start(Principal("tester", frozenset({"train"})),
                                               {"base_model": "models/tiny", "dataset": "d", "max_steps": 2})  # fmt: skip
    job = await app.jobs.wait(handle.job_id, 600)
    assert job.state is JobState.SUCCEEDED, job.error
    assert job.pid == warm and job.result["steps"] == 2
    assert "(warm start)" in app.workspace.run(job.id).log.read_text()
