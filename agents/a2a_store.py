"""A2A tasks and push configs in the workspace database, through forge's own Store.

The tables are the ones a2a-sdk's SQLAlchemy stores created (migration 0011 creates them
when absent, with the same columns), so a workspace keeps its tasks across the change.
These stores take no SQLAlchemy: it was a fifth of the server's memory for four queries.

Who sees what follows the jobs' rule (forge_mcp/jobs/engine.py): a caller finds only its
own tasks and push configs — someone else's answers "task not found", like an unknown id —
while admin keys and the local operator see every one. A task keeps the owner it was
created with, whoever saves it later (an admin cancelling it must not make it theirs).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from datetime import datetime
from typing import Any

from a2a.server.context import ServerCallContext
from a2a.server.tasks.push_notification_config_store import (
    PushNotificationConfigStore,
    normalize_push_notification_config,
)
from a2a.server.tasks.task_store import TaskStore
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig, TaskState
from a2a.utils.constants import DEFAULT_LIST_TASKS_PAGE_SIZE
from a2a.utils.errors import InvalidParamsError
from a2a.utils.task import ListTasksCursor, decode_list_tasks_cursor, decode_page_token, encode_list_tasks_cursor
from google.protobuf.json_format import MessageToDict, MessageToJson, Parse, ParseDict
from google.protobuf.timestamp_pb2 import Timestamp

from forge_mcp.agents.a2a_owners import principal_from
from forge_mcp.store import Store

log = logging.getLogger("forge_mcp.a2a")

TASKS_TABLE = "a2a_tasks"
PUSH_TABLE = "a2a_push_configs"
# What a2a-sdk's stores write in protocol_version; forge has only ever stored this form.
PROTOCOL_VERSION = "1.0"
# last_updated as SQLAlchemy wrote it: naive UTC text that sorts and compares as time does.
_STAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
# Tasks are listed newest first, tasks without a timestamp last, then by id (a2a-sdk's order).
_LIST_ORDER = "ORDER BY last_updated IS NULL, last_updated DESC, id DESC"


class SqliteTaskStore(TaskStore):
    def __init__(self, store: Store, *, auth_enabled: bool) -> None:
        self._store = store
        self._auth_enabled = auth_enabled

    async def save(self, task: Task, context: ServerCallContext) -> None:
        scope, scope_params = _scope(context, self._auth_enabled)
        row = _task_row(task, owner=context.user.user_name)
        columns = ", ".join(row)
        updated = ", ".join(f"{name} = excluded.{name}" for name in row if name not in ("id", "owner"))
        changed = await self._store.execute(
            f"INSERT INTO {TASKS_TABLE} ({columns}) VALUES ({', '.join('?' for _ in row)}) "
            f"ON CONFLICT(id) DO UPDATE SET {updated} WHERE {scope}",
            (*row.values(), *scope_params),
        )
        if not changed:  # the request handlers look a task up before they save it: not expected
            log.warning("A2A task %s belongs to another owner: not saved for %r", task.id, context.user.user_name)

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        scope, scope_params = _scope(context, self._auth_enabled)
        row = await self._store.fetchone(f"SELECT * FROM {TASKS_TABLE} WHERE id = ? AND {scope}", (task_id, *scope_params))
        return _task(row) if row is not None else None

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        scope, scope_params = _scope(context, self._auth_enabled)
        await self._store.execute(f"DELETE FROM {TASKS_TABLE} WHERE id = ? AND {scope}", (task_id, *scope_params))

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        scope, scope_params = _scope(context, self._auth_enabled)
        where, values = [scope], list(scope_params)
        if params.context_id:
            where.append("context_id = ?")
            values.append(params.context_id)
        if params.status:
            where.append("json_extract(status, '$.state') = ?")
            values.append(TaskState.Name(params.status))
        if params.HasField("status_timestamp_after"):
            where.append("last_updated >= ?")
            values.append(params.status_timestamp_after.ToDatetime().strftime(_STAMP_FORMAT))
        matching = " AND ".join(where)
        total = await self._store.fetchone(f"SELECT COUNT(*) AS n FROM {TASKS_TABLE} WHERE {matching}", values)
        if params.page_token:
            after, after_values = await self._after(params.page_token, scope, scope_params)
            where.append(after)
            values.extend(after_values)
        page_size = params.page_size or DEFAULT_LIST_TASKS_PAGE_SIZE
        rows = await self._store.fetchall(
            f"SELECT * FROM {TASKS_TABLE} WHERE {' AND '.join(where)} {_LIST_ORDER} LIMIT ?", (*values, page_size + 1)
        )
        page = rows[:page_size]
        return ListTasksResponse(
            tasks=[_task(row) for row in page],
            total_size=int(total["n"]) if total else 0,
            next_page_token=encode_list_tasks_cursor(_cursor(page[-1])) if len(rows) > page_size else None,
            page_size=page_size,
        )

    async def _after(self, page_token: str, scope: str, scope_params: tuple[bool, str]) -> tuple[str, list[Any]]:
        """The rows after a page token: a cursor (the last task of the page before), or an
        older client's token naming the first task of the page."""
        cursor = decode_list_tasks_cursor(page_token)
        if cursor is not None:
            if cursor.timestamp_ns is None:
                return "(last_updated IS NULL AND id < ?)", [cursor.task_id]
            try:
                stamp = _stamp(cursor.timestamp_ns)
            except (OverflowError, ValueError) as e:
                raise InvalidParamsError("Invalid page token") from e
            return "(last_updated < ? OR (last_updated = ? AND id < ?) OR last_updated IS NULL)", [stamp, stamp, cursor.task_id]
        first_id = decode_page_token(page_token)
        first = await self._store.fetchone(
            f"SELECT last_updated FROM {TASKS_TABLE} WHERE id = ? AND {scope}", (first_id, *scope_params)
        )
        if first is None:
            raise InvalidParamsError(f"Invalid page token: {page_token}")
        if first["last_updated"] is None:
            return "(last_updated IS NULL AND id <= ?)", [first_id]
        stamp = first["last_updated"]
        return "((last_updated = ? AND id <= ?) OR last_updated < ? OR last_updated IS NULL)", [stamp, first_id, stamp]


class SqlitePushConfigStore(PushNotificationConfigStore):
    """Push configs: the caller's own; an admin's reads and deletes reach every owner's,
    and notifications go to every config of a task, whoever registered it."""

    def __init__(self, store: Store, *, auth_enabled: bool) -> None:
        self._store = store
        self._auth_enabled = auth_enabled

    async def set_info(
        self, task_id: str, notification_config: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        config = normalize_push_notification_config(task_id, notification_config)
        scope, scope_params = _scope(context, self._auth_enabled)
        await self._store.execute(
            f"INSERT INTO {PUSH_TABLE} (task_id, config_id, config_data, owner, protocol_version) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT(task_id, config_id) DO UPDATE SET config_data = excluded.config_data, "
            f"protocol_version = excluded.protocol_version WHERE {scope}",
            (task_id, config.id, MessageToJson(config).encode(), context.user.user_name, PROTOCOL_VERSION, *scope_params),
        )
        return config

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        scope, scope_params = _scope(context, self._auth_enabled)
        rows = await self._store.fetchall(
            f"SELECT * FROM {PUSH_TABLE} WHERE task_id = ? AND {scope}", (task_id, *scope_params)
        )
        return _push_configs(rows)

    async def get_info_for_dispatch(self, task_id: str) -> list[TaskPushNotificationConfig]:
        return _push_configs(await self._store.fetchall(f"SELECT * FROM {PUSH_TABLE} WHERE task_id = ?", (task_id,)))

    async def delete_info(self, task_id: str, context: ServerCallContext, config_id: str | None = None) -> None:
        scope, scope_params = _scope(context, self._auth_enabled)
        only = " AND config_id = ?" if config_id is not None else ""
        await self._store.execute(
            f"DELETE FROM {PUSH_TABLE} WHERE task_id = ? AND {scope}{only}",
            (task_id, *scope_params, *([config_id] if config_id is not None else [])),
        )


def _scope(context: ServerCallContext, auth_enabled: bool) -> tuple[str, tuple[bool, str]]:
    """A WHERE clause for the rows this caller may see, and its parameters."""
    return "(? OR owner = ?)", (principal_from(context, auth_enabled).sees_everything, context.user.user_name)


def _task_row(task: Task, *, owner: str) -> dict[str, Any]:
    return {
        "id": task.id,
        "context_id": task.context_id,
        "kind": "task",
        "owner": owner,
        "last_updated": task.status.timestamp.ToDatetime().strftime(_STAMP_FORMAT) if task.status.HasField("timestamp") else None,
        "status": _json(MessageToDict(task.status)),
        "artifacts": _json([MessageToDict(artifact) for artifact in task.artifacts]),
        "history": _json([MessageToDict(message) for message in task.history]),
        "protocol_version": PROTOCOL_VERSION,
        "metadata": _json(MessageToDict(task.metadata)) if task.metadata.fields else None,
    }


def _task(row: sqlite3.Row) -> Task:
    task = Task(id=row["id"], context_id=row["context_id"])
    ParseDict(json.loads(row["status"]), task.status)
    for artifact in _loaded(row["artifacts"]) or []:
        ParseDict(artifact, task.artifacts.add())
    for message in _loaded(row["history"]) or []:
        ParseDict(message, task.history.add())
    if metadata := _loaded(row["metadata"]):
        task.metadata.update(metadata)
    return task


def _loaded(text: str | None) -> Any:
    """A JSON column's value; SQLAlchemy wrote an absent one as the text 'null', not NULL."""
    return json.loads(text) if text is not None else None


def _push_configs(rows: list[sqlite3.Row]) -> list[TaskPushNotificationConfig]:
    configs = []
    for row in rows:
        data = row["config_data"]
        try:
            configs.append(Parse(data.decode() if isinstance(data, bytes) else data, TaskPushNotificationConfig()))
        except Exception:  # one unreadable row must not hide a task's other configs
            log.warning("A2A push config %s of task %s is unreadable; skipped", row["config_id"], row["task_id"])
    return configs


def _cursor(row: sqlite3.Row) -> ListTasksCursor:
    # From the stored text, not the proto, so the cursor compares equal at the column's precision.
    stored = row["last_updated"]
    if stored is None:
        return ListTasksCursor(timestamp_ns=None, task_id=row["id"])
    stamp = Timestamp()
    stamp.FromDatetime(datetime.strptime(stored, _STAMP_FORMAT))
    return ListTasksCursor(timestamp_ns=stamp.ToNanoseconds(), task_id=row["id"])


def _stamp(timestamp_ns: int) -> str:
    stamp = Timestamp()
    stamp.FromNanoseconds(timestamp_ns)
    return stamp.ToDatetime().strftime(_STAMP_FORMAT)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
