"""Who may act on what, over the real protocols with real keys: scopes are ordered (a
train key can read), jobs and A2A tasks belong to the key that started them, someone
else's job looks exactly like a missing one, and admin keys see and act on everything."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import httpx2
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_data_part, new_message
from a2a.types import (
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTasksRequest,
    Role,
    SendMessageRequest,
    TaskPushNotificationConfig,
    TaskState,
)
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.conftest import forge_cli
from tests.e2e.test_jobs_a2a import job_of_task
from tests.polling import until

pytestmark = pytest.mark.e2e

# A job that runs until canceled: a test_sleep, started with the test-only tool (the test kinds are on).
START, LONG = "test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600.0}}
KEYS = {"alice": "train", "bob": "train", "root": "admin", "reader": "read"}


@dataclass(frozen=True)
class Owners:
    url: str
    keys: dict[str, str]


@pytest.fixture(scope="module")
def owners(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owners]:
    home: Path = tmp_path_factory.mktemp("ws-owners") / "forge-workspace"
    keys = {}
    for name, scope in KEYS.items():
        created = forge_cli(home, "keys", "create", "--name", name, "--scopes", scope)
        assert created.returncode == 0, created.stderr
        keys[name] = created.stdout.strip()
    with ServerProcess(home, args=("--auth", "on"), env={"FORGE_PUSH_ALLOWED_HOSTS": "127.0.0.1", "FORGE_TEST_JOB_KINDS": "1"}) as live:
        yield Owners(url=live.url, keys=keys)


@asynccontextmanager
async def mcp_as(owners: Owners, who: str, mode: str = "auto") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {owners.keys[who]}"}) as http:
        async with Client(streamable_http_client(f"{owners.url}/mcp/", http_client=http), mode=mode) as client:
            yield client


@asynccontextmanager
async def a2a_as(owners: Owners, who: str) -> AsyncIterator[object]:
    http = httpx.AsyncClient(headers={"authorization": f"Bearer {owners.keys[who]}"})
    client = await create_client(owners.url, client_config=ClientConfig(streaming=False, polling=True, httpx_client=http))
    try:
        yield client
    finally:
        await client.close()
        await http.aclose()


def error_text(result) -> str:  # noqa: ANN001
    assert result.is_error, result
    return result.content[0].text


def as_unknown(text: str, job_id: str) -> str:
    """The error with the id blanked, to compare someone else's job with a made-up id."""
    return re.sub(re.escape(job_id) + "|job_0+", "ID", text)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_train_key_opens_a_session_lists_tools_and_plans(owners: Owners, mode: str) -> None:
    async with mcp_as(owners, "alice", mode) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        planned = await client.call_tool("train_plan", {"spec": {"base_model": "models/none", "dataset": "ds_none"}})
        overview = await client.call_tool("forge_overview", {})
    assert {"train_start", "train_plan", "job_status"} <= tools
    # The call reached the planner (it checked the spec's paths) instead of stopping at a scope check.
    refusal = error_text(planned)
    assert "scope" not in refusal and ("models/none" in refusal or "ds_none" in refusal), refusal
    assert not overview.is_error


def test_a_read_key_cannot_start_a_job(owners: Owners) -> None:
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": START, "arguments": LONG}}
    headers = {"accept": "application/json, text/event-stream", "authorization": f"Bearer {owners.keys['reader']}"}
    refused = httpx.post(f"{owners.url}/mcp/", json=call, headers=headers)
    assert refused.status_code == 403 and "'train' scope" in refused.json()["error_description"]


async def test_someone_elses_job_looks_missing_over_mcp_and_an_admin_acts_on_it(owners: Owners) -> None:
    async with mcp_as(owners, "alice") as alice:
        started = await alice.call_tool(START, LONG)
        job_id = started.structured_content["job_id"]
        own = await alice.call_tool("job_list", {})
        async with mcp_as(owners, "bob") as bob:
            refused, unknown = {}, {}
            for tool in ("job_status", "job_wait", "job_logs", "job_metrics", "job_cancel", "job_resume",
                         "model_compare_report"):  # fmt: skip
                refused[tool] = error_text(await bob.call_tool(tool, {"job_id": job_id}))
                unknown[tool] = error_text(await bob.call_tool(tool, {"job_id": "job_00000000"}))
            stop = error_text(await bob.call_tool("serve_stop", {"service": job_id}))
            generate = error_text(await bob.call_tool("model_generate", {"service": job_id, "prompt": "hi"}))
            services = await bob.call_tool("serve_list", {"include_ended": True})
            listed = await bob.call_tool("job_list", {})
            overview = await bob.call_tool("forge_overview", {})
            with pytest.raises(Exception, match="no job"):
                await bob.read_resource(f"forge://jobs/{job_id}")
            with pytest.raises(Exception, match="no job"):
                await bob.read_resource(f"forge://jobs/{job_id}/logs")
        still = await alice.call_tool("job_status", {"job_id": job_id})
        async with mcp_as(owners, "root") as root:
            seen = await root.call_tool("job_list", {})
            canceled = await root.call_tool("job_cancel", {"job_id": job_id})
        resumed = await alice.call_tool("job_resume", {"job_id": job_id})
        resumed_id = resumed.structured_content["job_id"]
        mine = await alice.call_tool("job_cancel", {"job_id": resumed_id})
    assert job_id in {j["id"] for j in own.structured_content["jobs"]}
    for tool, text in refused.items():  # word for word the answer for an id that never existed
        assert f"no job '{job_id}'" in text, (tool, text)
        assert as_unknown(text, job_id) == as_unknown(unknown[tool], job_id), (tool, text)
    assert f"no job '{job_id}'" in stop and f"no job '{job_id}'" in generate
    assert services.structured_content["services"] == []
    assert job_id not in {j["id"] for j in listed.structured_content["jobs"]}
    assert sum(listed.structured_content["counts"].values()) == 0  # bob has started nothing
    assert overview.structured_content["jobs"] == {}  # not even a count of alice's
    assert still.structured_content["state"] in ("QUEUED", "RUNNING")  # bob's cancel did nothing
    assert job_id in {j["id"] for j in seen.structured_content["jobs"]}
    assert canceled.structured_content["state"] == "CANCELED" and not job_processes(job_id)
    assert resumed.structured_content["job_id"] != job_id
    assert mine.structured_content["state"] == "CANCELED"


async def test_a_job_an_admin_resumes_stays_its_owners(owners: Owners) -> None:
    async with mcp_as(owners, "alice") as alice:
        job_id = (await alice.call_tool(START, LONG)).structured_content["job_id"]
        assert (await alice.call_tool("job_cancel", {"job_id": job_id})).structured_content["state"] == "CANCELED"
        async with mcp_as(owners, "root") as root:
            resumed = await root.call_tool("job_resume", {"job_id": job_id})
            assert not resumed.is_error, resumed.content
            resumed_id = resumed.structured_content["job_id"]
            admins_own = await root.call_tool("job_list", {})
        listed = await alice.call_tool("job_list", {})
        status = await alice.call_tool("job_status", {"job_id": resumed_id})
        async with mcp_as(owners, "bob") as bob:
            not_bobs = error_text(await bob.call_tool("job_status", {"job_id": resumed_id}))
        stopped = await alice.call_tool("job_cancel", {"job_id": resumed_id})  # hers to act on, too
    assert resumed_id != job_id
    assert resumed_id in {j["id"] for j in listed.structured_content["jobs"]}
    assert not status.is_error, status.content
    assert (status.structured_content["principal"], status.structured_content["parent_id"]) == ("alice", job_id)
    assert {j["principal"] for j in admins_own.structured_content["jobs"] if j["id"] == resumed_id} == {"alice"}
    assert f"no job '{resumed_id}'" in not_bobs
    assert stopped.structured_content["state"] == "CANCELED" and not job_processes(resumed_id)


def benchmark_message():  # noqa: ANN201
    return new_message([new_data_part({"tool": START, "arguments": LONG})], role=Role.ROLE_USER)


async def test_someone_elses_a2a_task_looks_missing_and_an_admin_cancels_it(owners: Owners) -> None:
    async with a2a_as(owners, "alice") as alice:
        [first] = [e async for e in alice.send_message(SendMessageRequest(message=benchmark_message()))]
        task_id = first.task.id
        job_id = await job_of_task(alice, task_id)
        hook = TaskPushNotificationConfig(task_id=task_id, id="alice-hook", url="http://127.0.0.1:9/hook")
        await alice.create_task_push_notification_config(hook)
        hooks = ListTaskPushNotificationConfigsRequest(task_id=task_id)
        async with a2a_as(owners, "bob") as bob:
            with pytest.raises(Exception, match="(?i)task not found"):
                await bob.get_task(GetTaskRequest(id=task_id))
            with pytest.raises(Exception, match="(?i)task not found"):
                await bob.cancel_task(CancelTaskRequest(id=task_id))
            with pytest.raises(Exception, match="(?i)task not found"):
                await bob.list_task_push_notification_configs(hooks)
            with pytest.raises(Exception, match="(?i)task not found"):
                await bob.delete_task_push_notification_config(
                    DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="alice-hook")
                )
            bobs = await bob.list_tasks(ListTasksRequest())
        still = await alice.get_task(GetTaskRequest(id=task_id))
        async with a2a_as(owners, "root") as root:
            seen = await root.list_tasks(ListTasksRequest())
            got = await root.get_task(GetTaskRequest(id=task_id))
            root_hooks = await root.list_task_push_notification_configs(hooks)
            await root.delete_task_push_notification_config(
                DeleteTaskPushNotificationConfigRequest(task_id=task_id, id="alice-hook")
            )
            canceled = await root.cancel_task(CancelTaskRequest(id=task_id))
        left_hooks = await alice.list_task_push_notification_configs(hooks)

        async def settled() -> bool:
            return (await alice.get_task(GetTaskRequest(id=task_id))).status.state == TaskState.TASK_STATE_CANCELED

        await until(settled, what=f"task {task_id} to read as canceled for its owner")
        alices = await alice.list_tasks(ListTasksRequest())
    assert task_id not in {t.id for t in bobs.tasks}
    assert still.status.state not in (TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_COMPLETED)
    assert task_id in {t.id for t in seen.tasks} and got.id == task_id
    assert [h.id for h in root_hooks.configs] == ["alice-hook"]  # an admin sees alice's push config
    assert list(left_hooks.configs) == []  # and deleted it
    assert canceled.status.state == TaskState.TASK_STATE_CANCELED and not job_processes(job_id)
    assert task_id in {t.id for t in alices.tasks}  # the admin's cancel left the task alice's
