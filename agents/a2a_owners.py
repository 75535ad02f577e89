"""Who an A2A caller is: the principal behind a request's call context, and the stand-in
for a task's recorded owner when the server writes to that task on the owner's behalf.
Which tasks and push configs a principal sees is decided in a2a_store.py."""

from __future__ import annotations

from a2a.auth.user import User
from a2a.server.context import ServerCallContext

from forge_mcp.security.principal import Principal


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
