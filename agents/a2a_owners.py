"""Who sees which A2A task and push config: the rule jobs follow (forge_mcp/jobs/engine.py).

a2a-sdk's database stores already keep each task and push config to its owner, the caller's
user name (the API key's name; "" without auth): GetTask, ListTasks, CancelTask,
SubscribeToTask and the push-config calls find only the caller's own, and someone else's
task answers "task not found", exactly like an unknown id. This module adds the other half:
admin keys and the local operator see every task, and a task keeps its owner when an admin
acts on it (cancelling someone's task must not make it the admin's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.tasks import DatabasePushNotificationConfigStore, DatabaseTaskStore
from a2a.types import ListTasksRequest, ListTasksResponse, Task, TaskPushNotificationConfig
from sqlalchemy import select

from forge_mcp.security.principal import Principal

# Set while an admin's read runs: the owner filter then matches every row.
_EVERY_OWNER: ContextVar[bool] = ContextVar("forge_a2a_every_owner", default=False)


def principal_from(call: ServerCallContext, auth_enabled: bool) -> Principal:
    credentials = call.state.get("auth")
    if auth_enabled and call.user.is_authenticated and credentials is not None:
        return Principal(name=call.user.user_name, scopes=frozenset(credentials.scopes))
    if auth_enabled:
        # The HTTP layer refuses unauthenticated requests before they get here.
        return Principal(name="anonymous", scopes=frozenset())
    return Principal.local()


class TaskOwner(User):
    """Stands for a task's recorded owner, for writes the server makes on the owner's behalf."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def user_name(self) -> str:
        return self._name


def _owner_resolver(owner_column: Any) -> Callable[[ServerCallContext], Any]:
    def resolve(context: ServerCallContext) -> Any:
        if _EVERY_OWNER.get():
            # The stores compare `owner == <this>` in their WHERE clauses (reads and deletes
            # only; see below). The column itself makes that `owner = owner`: every row.
            return owner_column
        return context.user.user_name

    return resolve


@contextmanager
def _every_owner(enabled: bool) -> Iterator[None]:
    token = _EVERY_OWNER.set(enabled)
    try:
        yield
    finally:
        _EVERY_OWNER.reset(token)


class OwnedTaskStore(DatabaseTaskStore):
    def __init__(self, engine: Any, *, table_name: str, auth_enabled: bool) -> None:
        super().__init__(engine, table_name=table_name)
        self.owner_resolver = _owner_resolver(self.task_model.owner)
        self._auth_enabled = auth_enabled

    def _sees_everything(self, context: ServerCallContext) -> bool:
        return principal_from(context, self._auth_enabled).sees_everything

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        with _every_owner(self._sees_everything(context)):
            return await super().get(task_id, context)

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        with _every_owner(self._sees_everything(context)):
            return await super().list(params, context)

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        with _every_owner(self._sees_everything(context)):
            await super().delete(task_id, context)

    async def save(self, task: Task, context: ServerCallContext) -> None:
        """A task keeps the owner it was created with. Only an admin can reach someone else's
        task, so only an admin's writes need the lookup (without auth every task is the one
        local operator's, so none do: that path stays one write, as in the SDK)."""
        if self._auth_enabled and self._sees_everything(context):
            owner = await self.owner_of(task.id)
            if owner is not None:
                context = ServerCallContext(user=TaskOwner(owner), state=context.state)
        await super().save(task, context)

    async def owner_of(self, task_id: str) -> str | None:
        await self._ensure_initialized()
        async with self.async_session_maker() as session:
            result = await session.execute(select(self.task_model.owner).where(self.task_model.id == task_id))
            return result.scalar_one_or_none()


class OwnedPushConfigStore(DatabasePushNotificationConfigStore):
    """Push configs: the caller's own; an admin's reads and deletes reach every owner's."""

    def __init__(self, engine: Any, *, table_name: str, auth_enabled: bool) -> None:
        super().__init__(engine, table_name=table_name)
        self.owner_resolver = _owner_resolver(self.config_model.owner)
        self._auth_enabled = auth_enabled

    async def get_info(self, task_id: str, context: ServerCallContext) -> list[TaskPushNotificationConfig]:
        with _every_owner(principal_from(context, self._auth_enabled).sees_everything):
            return await super().get_info(task_id, context)

    async def delete_info(self, task_id: str, context: ServerCallContext, config_id: str | None = None) -> None:
        with _every_owner(principal_from(context, self._auth_enabled).sees_everything):
            await super().delete_info(task_id, context, config_id)
