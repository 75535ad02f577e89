"""The local executor on real worker processes, without the engine: poll (liveness, exit
status, each event once), logs from a cursor, stop (SIGTERM to the group), kill (every
process of the job, grandchildren that left the group included), and a second executor
(a restarted server) finding a worker it did not start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.executors.base import WorkerHandle
from forge_mcp.jobs.executors.local import LocalExecutor, job_processes
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace
from tests.polling import until

CAPACITY = Capacity(gpu_slots=0, cpu_slots=2, memory_gb=8.0)
EXIT_CANCELED = 143  # forge_mcp.worker's exit status after a SIGTERM it handled


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "ws" / "runs").mkdir(parents=True)
    return tmp_path / "ws"


def prepared(home: Path, job_id: str, kind: str, arguments: dict[str, Any]) -> RunDir:
    """A run folder with its job.json, as the engine leaves it before a launch."""
    run = RunDir(home / "runs", job_id)
    run.path.mkdir()
    JobSpec(job_id=job_id, kind=kind, arguments=arguments, attempt=1, heartbeat_s=0.2,
            workspace=WorkerWorkspace(root=home)).write(run)  # fmt: skip
    return run


class Watcher:
    """Polls a handle, keeping every event it was given, until a condition holds."""

    def __init__(self, executor: LocalExecutor, handle: WorkerHandle) -> None:
        self.executor, self.handle = executor, handle
        self.events: list[dict[str, Any]] = []
        self.alive, self.exit_code = True, None

    async def until(self, condition: Any, what: str) -> None:
        async def polled() -> bool:
            poll = await self.executor.poll(self.handle)
            self.events += poll.events
            self.alive, self.exit_code = poll.alive, poll.exit_code
            return bool(condition(self))

        await until(polled, 60, what)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


async def test_poll_gives_each_event_once_then_the_exit_status_and_logs_read_on_from_a_cursor(home: Path) -> None:
    executor = LocalExecutor(home, CAPACITY)
    run = prepared(home, "job_events", "test_events", {"progress": 3, "metrics": 3, "log_lines": 3})
    handle = await executor.launch("job_events", run, executor.host)
    assert (handle.host, handle.run) == (executor.host, run) and handle.pid > 0 and handle.started_at > 0
    watch = Watcher(executor, handle)
    await watch.until(lambda w: not w.alive, "the worker to end")
    assert watch.exit_code == 0
    types = watch.types()
    assert types[0] == "started" and types[-1] == "result"
    assert types.count("progress") == 3 and types.count("metric") == 3  # none read twice
    assert watch.events[-1]["result"] == {"progress": 3, "metrics": 3, "log_lines": 3}

    whole = await executor.logs(handle)
    assert "log line 1" in whole.text and "log line 3" in whole.text
    assert whole.next_offset == whole.size == run.log.stat().st_size and not whole.truncated
    assert (await executor.logs(handle, since=whole.next_offset)).text == ""
    tail = await executor.logs(handle, max_bytes=12)
    assert tail.truncated and len(tail.text.encode()) == 12 and whole.text.endswith(tail.text)
    await executor.collect(handle, [run.path])  # the worker wrote into the workspace: nothing to bring
    assert not job_processes("job_events")


async def test_stop_sends_sigterm_and_the_worker_reports_canceled(home: Path) -> None:
    executor = LocalExecutor(home, CAPACITY)
    handle = await executor.launch("job_stop", prepared(home, "job_stop", "test_sleep", {"seconds": 600}), executor.host)
    watch = Watcher(executor, handle)
    await watch.until(lambda w: "started" in w.types(), "the worker to start")
    await executor.stop(handle)
    await watch.until(lambda w: not w.alive, "the worker to stop")
    assert watch.exit_code == EXIT_CANCELED and watch.types()[-1] == "canceled"
    await executor.stop(handle)  # once it is gone: nothing to do, no error


async def test_kill_ends_a_worker_that_ignores_sigterm_and_the_grandchild_that_left_its_group(home: Path) -> None:
    executor = LocalExecutor(home, CAPACITY)
    run = prepared(home, "job_kill", "test_spawn", {"child_seconds": 600, "new_session": True, "wait_s": 600})
    handle = await executor.launch("job_kill", run, executor.host)
    watch = Watcher(executor, handle)
    await watch.until(lambda w: "progress" in w.types(), "the grandchild to be spawned")
    grandchild = int(next(e for e in watch.events if e["type"] == "progress")["message"].split()[-1])
    assert {p.pid for p in job_processes("job_kill")} >= {handle.pid, grandchild}
    await executor.kill(handle)
    assert not job_processes("job_kill")
    await watch.until(lambda w: not w.alive, "the poll to see the worker gone")
    assert watch.exit_code == -9


async def test_a_restarted_server_finds_a_worker_it_did_not_start_and_reads_its_events_from_the_start(home: Path) -> None:
    first = LocalExecutor(home, CAPACITY)
    run = prepared(home, "job_adopt", "test_sleep", {"seconds": 600})
    handle = await first.launch("job_adopt", run, first.host)
    await Watcher(first, handle).until(lambda w: "started" in w.types(), "the worker to start")
    # What a restarted server has: the job's row, and an executor of its own.
    second = LocalExecutor(home, CAPACITY)
    adopted = WorkerHandle(job_id="job_adopt", run=run, host=handle.host, pid=handle.pid, started_at=handle.started_at)
    poll = await second.poll(adopted)
    assert poll.alive and poll.events[0]["type"] == "started"
    await second.kill(adopted)
    assert not job_processes("job_adopt")
    # (Its exit status is not checked: in a real restart the first executor is gone with its server;
    # here both live in one process, and the second one's wait reaped the first one's child.)
    await Watcher(first, handle).until(lambda w: not w.alive, "the first executor to see it gone")


async def test_a_handle_it_cannot_see_is_not_alive_and_its_events_still_read(home: Path) -> None:
    executor = LocalExecutor(home, CAPACITY)
    run = prepared(home, "job_elsewhere", "test_sleep", {"seconds": 1})
    run.events.write_text('{"type":"started","at":1.0}\n{"type":"result","at":2.0,"result":{}}\n')
    me = os.getpid()
    for handle in (WorkerHandle("job_elsewhere", run, host="another-machine", pid=me, started_at=0.0),
                   WorkerHandle("job_elsewhere", run, host=executor.host, pid=0)):  # fmt: skip
        poll = await executor.poll(handle)
        assert not poll.alive and poll.exit_code is None
        assert [e["type"] for e in poll.events] == ["started", "result"]
    assert executor.hosts() == {executor.host: CAPACITY}
