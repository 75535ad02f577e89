"""A2A storage stays bounded: ended tasks are pruned past their retention and beyond the
cap (oldest first) with their ledger rows, and a task whose job still runs is never pruned."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_data_part, new_message
from a2a.types import CancelTaskRequest, GetTaskRequest, ListTasksRequest, Role, SendMessageRequest, TaskState

from forge_mcp.server_process import ServerProcess
from tests.e2e.test_jobs_a2a import job_of_task
from tests.polling import until

pytestmark = pytest.mark.e2e

# A job that runs until canceled: a test_sleep, started with the test-only tool.
START, LONG = "test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600.0}}
TEST_KINDS = {"FORGE_TEST_JOB_KINDS": "1"}
CAP = 3


def tool_message(tool: str, arguments: dict | None = None):  # noqa: ANN201
    return new_message([new_data_part({"tool": tool, "arguments": arguments or {}})], role=Role.ROLE_USER)


@asynccontextmanager
async def a2a(url: str) -> AsyncIterator[object]:
    client = await create_client(url, client_config=ClientConfig(streaming=False, polling=True))
    try:
        yield client
    finally:
        await client.close()


async def send(client, tool: str, arguments: dict | None = None) -> str:  # noqa: ANN001
    [event] = [e async for e in client.send_message(SendMessageRequest(message=tool_message(tool, arguments)))]
    return event.task.id


def ledger_ids(home: Path) -> set[str]:
    with sqlite3.connect(f"file:{home / 'forge.db'}?mode=ro", uri=True, timeout=10) as db:
        return {row[0] for row in db.execute("SELECT task_id FROM a2a_task_ledger")}


async def exists(client, task_id: str) -> bool:  # noqa: ANN001
    try:
        await client.get_task(GetTaskRequest(id=task_id))
    except Exception as exc:  # the SDK's client error for "task not found"
        assert "not found" in str(exc).lower(), exc
        return False
    return True


async def test_beyond_the_cap_the_oldest_ended_tasks_go_and_a_running_one_stays(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    env = {"FORGE_A2A_MAX_TASKS": str(CAP), "FORGE_A2A_PRUNE_INTERVAL_S": "0.2", **TEST_KINDS}
    with ServerProcess(home, env=env) as live:
        async with a2a(live.url) as client:
            running = await send(client, START, LONG)
            job_id = await job_of_task(client, running)
            quick = [await send(client, "system_status") for _ in range(CAP + 3)]

            async def at_cap() -> bool:
                return (await client.list_tasks(ListTasksRequest())).total_size <= CAP

            await until(at_cap, what=f"the A2A tasks to be pruned down to {CAP}")
            listed = await client.list_tasks(ListTasksRequest())
            kept = {task_id: await exists(client, task_id) for task_id in [running, *quick]}
            ledger = ledger_ids(home)
            await client.cancel_task(CancelTaskRequest(id=running))
    assert listed.total_size == CAP
    assert kept[running], "the task whose job runs was pruned"
    assert [kept[t] for t in quick] == [False] * 4 + [True] * 2  # oldest first
    assert {t.id for t in listed.tasks} == {running, *quick[-2:]}
    assert ledger == {running, *quick[-2:]}  # the ledger rows went with their tasks
    assert job_id.startswith("job_")


async def test_ended_tasks_go_after_their_retention(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    env = {"FORGE_A2A_TASK_RETENTION_HOURS": "0.0003", "FORGE_A2A_PRUNE_INTERVAL_S": "0.2", **TEST_KINDS}  # about a second
    with ServerProcess(home, env=env) as live:
        async with a2a(live.url) as client:
            running = await send(client, START, LONG)
            await job_of_task(client, running)
            ended = await send(client, "system_status")
            assert await exists(client, ended)

            async def pruned() -> bool:
                return not await exists(client, ended)

            await until(pruned, what=f"task {ended} to pass its retention")
            still = await client.get_task(GetTaskRequest(id=running))
            listed = await client.list_tasks(ListTasksRequest())
            await client.cancel_task(CancelTaskRequest(id=running))
    assert still.status.state == TaskState.TASK_STATE_WORKING
    assert {t.id for t in listed.tasks} == {running}
    assert ended not in ledger_ids(home)
