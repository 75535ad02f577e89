"""A2A tasks and push configs in the workspace database (agents/a2a_store.py): the listing
a2a-sdk's own stores give (order, filters, both kinds of page token), owners kept apart but
for admins, and tasks written by a2a-sdk's SQLAlchemy store read back unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from a2a.auth.user import UnauthenticatedUser
from a2a.server.context import ServerCallContext
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import (
    Artifact,
    ListTasksRequest,
    Message,
    Part,
    Role,
    Task,
    TaskPushNotificationConfig,
    TaskState,
    TaskStatus,
)
from a2a.utils.errors import InvalidParamsError
from a2a.utils.task import encode_page_token
from google.protobuf.timestamp_pb2 import Timestamp
from starlette.authentication import AuthCredentials

from forge_mcp.agents.a2a_owners import TaskOwner
from forge_mcp.agents.a2a_store import SqlitePushConfigStore, SqliteTaskStore
from forge_mcp.store import Store


def caller(name: str, *scopes: str) -> ServerCallContext:
    return ServerCallContext(user=TaskOwner(name), state={"auth": AuthCredentials(list(scopes))})


ALICE = caller("alice", "read", "train")
BOB = caller("bob", "read", "train")
ROOT = caller("root", "admin")


def task(task_id: str, *, seconds: int | None, context: str = "ctx-1", state: TaskState = TaskState.TASK_STATE_COMPLETED) -> Task:
    status = TaskStatus(state=state)
    if seconds is not None:
        stamp = Timestamp()
        stamp.FromSeconds(1_790_000_000 + seconds)
        status.timestamp.CopyFrom(stamp)
    return Task(
        id=task_id,
        context_id=context,
        status=status,
        history=[Message(role=Role.ROLE_USER, message_id=f"{task_id}-m", parts=[Part(text="hi")])],
        artifacts=[Artifact(artifact_id=f"{task_id}-a", parts=[Part(text="answer")])],
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "forge.db") as opened:
        yield opened


async def test_a_task_reads_back_as_it_was_saved(store: Store) -> None:
    tasks = SqliteTaskStore(store, auth_enabled=True)
    saved = task("t1", seconds=5)
    saved.metadata.update({"tool": "job_status"})
    await tasks.save(saved, ALICE)
    assert await tasks.get("t1", ALICE) == saved


async def test_listing_matches_a2a_sdk_order_filters_and_cursor_pages(store: Store) -> None:
    ours, reference = SqliteTaskStore(store, auth_enabled=False), InMemoryTaskStore()
    local = ServerCallContext(user=UnauthenticatedUser())
    # equal timestamps (ordered by id), no timestamp (listed last), two contexts, two states
    for t in [task("a", seconds=3), task("b", seconds=3), task("c", seconds=9, context="ctx-2"),
              task("d", seconds=None), task("e", seconds=1, state=TaskState.TASK_STATE_WORKING), task("f", seconds=None)]:  # fmt: skip
        await ours.save(t, local)
        await reference.save(t, local)
    for request in [ListTasksRequest(), ListTasksRequest(context_id="ctx-1"),
                    ListTasksRequest(status=TaskState.TASK_STATE_WORKING), ListTasksRequest(page_size=2)]:  # fmt: skip
        want, got = await reference.list(request, local), await ours.list(request, local)
        assert [t.id for t in got.tasks] == [t.id for t in want.tasks]
        assert (got.total_size, got.page_size) == (want.total_size, want.page_size)
    after = ListTasksRequest()
    after.status_timestamp_after.FromSeconds(1_790_000_003)
    assert [t.id for t in (await ours.list(after, local)).tasks] == ["c", "b", "a"]

    pages, token = [], ""
    while True:
        page = await ours.list(ListTasksRequest(page_size=2, page_token=token), local)
        pages.append([t.id for t in page.tasks])
        if not page.next_page_token:
            break
        token = page.next_page_token
    assert pages == [["c", "b"], ["a", "e"], ["f", "d"]]


async def test_an_older_clients_page_token_names_the_first_task_of_its_page(store: Store) -> None:
    tasks = SqliteTaskStore(store, auth_enabled=False)
    local = ServerCallContext(user=UnauthenticatedUser())
    for t in [task("a", seconds=3), task("b", seconds=2), task("c", seconds=None)]:
        await tasks.save(t, local)
    page = await tasks.list(ListTasksRequest(page_token=encode_page_token("b")), local)
    assert [t.id for t in page.tasks] == ["b", "c"]
    with pytest.raises(InvalidParamsError):
        await tasks.list(ListTasksRequest(page_token=encode_page_token("nobody-has-this")), local)


async def test_a_caller_sees_its_own_tasks_and_an_admin_sees_all_without_taking_them(store: Store) -> None:
    tasks = SqliteTaskStore(store, auth_enabled=True)
    await tasks.save(task("alices", seconds=1), ALICE)
    await tasks.save(task("bobs", seconds=2), BOB)
    assert await tasks.get("alices", BOB) is None
    assert [t.id for t in (await tasks.list(ListTasksRequest(), BOB)).tasks] == ["bobs"]
    assert [t.id for t in (await tasks.list(ListTasksRequest(), ROOT)).tasks] == ["bobs", "alices"]

    canceled = task("alices", seconds=4, state=TaskState.TASK_STATE_CANCELED)
    await tasks.save(canceled, ROOT)  # an admin cancels it: it stays alice's
    assert (await tasks.get("alices", ALICE)).status.state == TaskState.TASK_STATE_CANCELED
    await tasks.save(task("alices", seconds=5), BOB)  # not bob's: nothing changes
    assert (await tasks.get("alices", ALICE)).status.state == TaskState.TASK_STATE_CANCELED
    await tasks.delete("alices", BOB)
    assert await tasks.get("alices", ROOT) is not None
    await tasks.delete("alices", ROOT)
    assert await tasks.get("alices", ALICE) is None


async def test_push_configs_belong_to_their_owner_and_all_are_notified(store: Store) -> None:
    configs = SqlitePushConfigStore(store, auth_enabled=True)
    stored = await configs.set_info("t1", TaskPushNotificationConfig(url="https://hooks.example/a"), ALICE)
    assert (stored.id, stored.task_id) == ("t1", "t1")
    await configs.set_info("t1", TaskPushNotificationConfig(id="b", url="https://hooks.example/b"), BOB)
    assert [c.url for c in await configs.get_info("t1", ALICE)] == ["https://hooks.example/a"]
    assert len(await configs.get_info("t1", ROOT)) == 2
    assert len(await configs.get_info_for_dispatch("t1")) == 2
    await configs.delete_info("t1", BOB, config_id="t1")  # alice's: untouched
    assert len(await configs.get_info_for_dispatch("t1")) == 2
    await configs.delete_info("t1", ROOT)
    assert await configs.get_info_for_dispatch("t1") == []


# a2a-sdk builds the model of a custom table name under its default model's class name
@pytest.mark.filterwarnings("ignore:This declarative base already contains a class")
async def test_tasks_written_by_a2a_sdks_sqlalchemy_store_read_back(store: Store, tmp_path: Path) -> None:
    """A workspace from before keeps its tasks: same table, same columns, same encoding."""
    pytest.importorskip("sqlalchemy")
    from a2a.server.tasks.database_task_store import DatabaseTaskStore
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'forge.db'}")
    try:
        theirs = DatabaseTaskStore(engine, table_name="a2a_tasks")
        written = [task("old-1", seconds=7), task("old-2", seconds=None)]
        for t in written:
            await theirs.save(t, ALICE)
        ours = SqliteTaskStore(store, auth_enabled=True)
        assert await ours.get("old-1", ALICE) == written[0]
        listed = await ours.list(ListTasksRequest(page_size=1), ALICE)
        assert [t.id for t in listed.tasks] == ["old-1"]
        second = await ours.list(ListTasksRequest(page_size=1, page_token=listed.next_page_token), ALICE)
        assert [t.id for t in second.tasks] == ["old-2"]
        await ours.save(task("new", seconds=8), ALICE)
        assert (await theirs.get("new", ALICE)) == task("new", seconds=8)
    finally:
        await engine.dispose()
