"""Jobs through A2A: a long tool's task is its job — streamed progress, the result as an
artifact, CancelTask cancels the job, and a task outlives a server restart honestly."""

from __future__ import annotations

from pathlib import Path

import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import CancelTaskRequest, GetTaskRequest, Role, SendMessageRequest, TaskState
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.polling import until

pytestmark = pytest.mark.e2e
TEST_KINDS = {"FORGE_TEST_JOB_KINDS": "1"}


def benchmark_message(seconds: float):  # noqa: ANN201
    arguments = {"seconds_per_test": seconds, "backend": "numpy", "devices": ["cpu"]}
    return new_message([new_data_part({"tool": "system_benchmark", "arguments": arguments})], role=Role.ROLE_USER)


def sleep_message(seconds: float):  # noqa: ANN201
    """A test_sleep job's task (the test kinds' tool: on servers started with FORGE_TEST_JOB_KINDS=1)."""
    start = {"kind": "test_sleep", "arguments": {"seconds": seconds}}
    return new_message([new_data_part({"tool": "test_job_start", "arguments": start})], role=Role.ROLE_USER)


async def test_streamed_benchmark_task_reports_progress_and_its_result(server: ServerProcess) -> None:
    async with a2a_client(server.url) as client:
        events = [e async for e in client.send_message(SendMessageRequest(message=benchmark_message(0.2)))]
    updates = [e.status_update.status for e in events if e.HasField("status_update")]
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    assert any("RUNNING" in t and "matrix multiply" in t for t in texts), texts
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    payload = get_data_parts(artifact.parts)[0]
    assert payload["job_id"].startswith("job_") and payload["result"]["matmul"][0]["gflops"] > 0


async def job_of_task(client, task_id: str) -> str:  # noqa: ANN001
    """The job a task's WORKING status names ("job job_… RUNNING …"), once it names one."""
    found: list[str] = []

    async def named() -> bool:
        task = await client.get_task(GetTaskRequest(id=task_id))
        words = task.status.message.parts[0].text.split() if task.status.message.parts else []
        if len(words) > 1 and words[0] == "job" and words[1].startswith("job_"):
            found.append(words[1])
        return bool(found)

    await until(named, what=f"task {task_id} to name its job")
    return found[0]


async def test_cancel_task_cancels_the_job(test_kinds_server: ServerProcess) -> None:
    server = test_kinds_server
    client = await create_client(server.url, client_config=ClientConfig(streaming=False, polling=True))
    try:
        [first] = [e async for e in client.send_message(SendMessageRequest(message=sleep_message(600)))]
        job_id = await job_of_task(client, first.task.id)
        canceled = await client.cancel_task(CancelTaskRequest(id=first.task.id))
    finally:
        await client.close()
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED
    assert not job_processes(job_id)
    async with Client(f"{server.url}/mcp/") as mcp:
        status = await mcp.call_tool("job_status", {"job_id": job_id})
    assert status.structured_content["state"] == "CANCELED"


async def test_task_of_a_job_is_settled_after_the_server_dies(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    first = ServerProcess(home, env=TEST_KINDS)
    first.start()
    client = await create_client(first.url, client_config=ClientConfig(streaming=False, polling=True))
    try:
        [event] = [e async for e in client.send_message(SendMessageRequest(message=sleep_message(3.0)))]
        await job_of_task(client, event.task.id)
    finally:
        await client.close()
    first.process.kill()  # kill -9: the executor following the task dies with it; the worker does not
    first.process.wait(10)
    with ServerProcess(home, env=TEST_KINDS) as second:
        client = await create_client(second.url)
        settled = (TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED)

        async def is_settled() -> bool:  # the adopted job finishes, then the ledger settles the task
            return (await client.get_task(GetTaskRequest(id=event.task.id))).status.state in settled

        try:
            await until(is_settled, what="the task to be settled after the restart")
            task = await client.get_task(GetTaskRequest(id=event.task.id))
        finally:
            await client.close()
    assert task.status.state == TaskState.TASK_STATE_COMPLETED, task.status
    assert get_data_parts(task.artifacts[-1].parts)[0]["result"]["slept_s"] >= 3.0


async def test_task_cut_off_by_a_restart_before_its_job_exists_fails_honestly(tmp_path: Path) -> None:
    """A ledger row without a job (an immediate tool, or a kill before submission) ends FAILED."""
    import sqlite3

    home = tmp_path / "ws"
    with ServerProcess(home) as first:
        client = await create_client(first.url, client_config=ClientConfig(streaming=False))
        [done] = [e async for e in client.send_message(SendMessageRequest(message=new_message(
            [new_data_part({"tool": "forge_overview"})], role=Role.ROLE_USER)))]  # fmt: skip
        await client.close()
    # Make the finished task look like one whose executor died mid-run: WORKING, unsettled.
    with sqlite3.connect(home / "forge.db") as db:
        db.execute("UPDATE a2a_task_ledger SET settled = 0 WHERE task_id = ?", (done.task.id,))
        status = db.execute("SELECT status FROM a2a_tasks WHERE id = ?", (done.task.id,)).fetchone()[0]
        db.execute(
            "UPDATE a2a_tasks SET status = ? WHERE id = ?",
            (status.replace("TASK_STATE_COMPLETED", "TASK_STATE_WORKING"), done.task.id),
        )
    with ServerProcess(home) as second:
        client = await create_client(second.url)
        try:
            task = await client.get_task(GetTaskRequest(id=done.task.id))
        finally:
            await client.close()
    assert task.status.state == TaskState.TASK_STATE_FAILED
    assert "server restarted" in task.status.message.parts[0].text
