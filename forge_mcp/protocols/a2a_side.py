"""The A2A half of the HTTP app: JSON-RPC at /a2a (and /a2a/), REST under /a2a/rest and the
agent card, over forge's own task store (agents/a2a_store.py). Its routes exist from the
start, but what answers them is built once the server is up (a2a-sdk is about a third of
start-up, which /health does not need): requests that arrive before wait for it. The build
also reconciles the A2A ledger and starts its pruner, as the start-up did before."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, Mount, Route, Router

from forge_mcp.protocols.background_thread import run_in_background_thread
from forge_mcp.protocols.deferred_asgi import DeferredApp

if TYPE_CHECKING:
    from forge_mcp.agents.a2a_operator import OperatorDelegate
    from forge_mcp.agents.a2a_tasks import A2ATaskLedger
    from forge_mcp.app import ForgeApp
    from forge_mcp.store import Store

log = logging.getLogger("forge_mcp.protocols.a2a_side")
# a2a.utils.constants.AGENT_CARD_WELL_KNOWN_PATH, spelled out so the route exists without importing a2a-sdk.
AGENT_CARD_PATH = "/.well-known/agent-card.json"
RPC_PATH = "/a2a"
REST_PREFIX = "/a2a/rest"
# a2a-sdk's packages import these modules whenever SQLAlchemy is installed (another extra,
# optuna, brings it), though forge uses none of them; SQLAlchemy was a fifth of the
# server's memory. Marked absent, the SDK takes its own path for a missing optional
# dependency (placeholders that raise only if used).
UNUSED_A2A_MODULES = (
    "a2a.server.tasks.database_task_store",
    "a2a.server.tasks.database_push_notification_config_store",
    "a2a.server.cluster.database_event_stream",
    "a2a.server.cluster.database_task_store",
)


class A2ASide:
    def __init__(self, app: ForgeApp) -> None:
        self._app = app
        self._card = DeferredApp("A2A")
        self._rpc = DeferredApp("A2A")
        self._rest = DeferredApp("A2A")
        self._build: asyncio.Task[None] | None = None
        self._ledger: A2ATaskLedger | None = None
        self._push: _Push | None = None
        self._operator: OperatorDelegate | None = None

    def card_routes(self) -> list[BaseRoute]:
        return [Route(AGENT_CARD_PATH, self._card, methods=["GET"])]

    def protocol_routes(self) -> list[BaseRoute]:
        return [
            Route(RPC_PATH, self._rpc, methods=["POST"]),
            # Both spellings answer: a redirect from /a2a/ to /a2a would lose a POST on the way.
            Route(f"{RPC_PATH}/", self._rpc, methods=["POST"]),
            # The REST routes end in a catch-all: keep them under their own prefix.
            Mount(REST_PREFIX, app=self._rest),
        ]

    def start(self) -> None:
        """Build in the background (from the lifespan, after the ForgeApp has started)."""
        self._build = asyncio.get_running_loop().create_task(self._start())

    async def built(self) -> None:
        """Wait until the build has ended (answering, or failed and answering 503)."""
        if self._build is not None:
            await self._build

    async def stop(self) -> None:
        """Before the ForgeApp stops: no build left running, the ledger's followers and pruner ended."""
        if self._build is not None and not self._build.done():
            self._build.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._build
        for deferred in (self._card, self._rpc, self._rest):
            deferred.fail()  # a request still waiting (or the build never started) gets a 503, not a hang
        if self._ledger is not None:
            await self._ledger.stop()

    async def close(self) -> None:
        """After the ForgeApp has stopped."""
        if self._operator is not None:
            await self._operator.close()
        if self._push is not None:
            await self._push.http.aclose()
        self._ledger = self._push = self._operator = None

    async def _start(self) -> None:
        try:
            # The imports are most of the cost: in a thread, the event loop keeps answering meanwhile.
            await run_in_background_thread("forge-a2a-imports", _import_sdk)
            card, rpc, rest = await self._build_apps()
        except Exception:
            log.exception("the A2A side failed to start; A2A requests get 503")
            for deferred in (self._card, self._rpc, self._rest):
                deferred.fail()
            return
        self._card.set(card)
        self._rpc.set(rpc)
        self._rest.set(rest)

    async def _build_apps(self) -> tuple[Router, Router, Router]:
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes import create_jsonrpc_routes, create_rest_routes

        from forge_mcp.agents.a2a_executor import CapabilityAgentExecutor
        from forge_mcp.agents.a2a_operator import OperatorDelegate
        from forge_mcp.agents.a2a_store import PUSH_TABLE, TASKS_TABLE, SqliteTaskStore
        from forge_mcp.agents.a2a_tasks import A2ATaskLedger
        from forge_mcp.protocols.a2a_card import build_agent_card
        from forge_mcp.protocols.http_routes import agent_card_routes

        app, settings = self._app, self._app.settings
        task_store = SqliteTaskStore(app.store, auth_enabled=settings.auth_enabled)
        card = build_agent_card(app.registry, settings)
        ledger = A2ATaskLedger(app.store, app.jobs)
        self._push = push = _push_notifications(settings, app.store)
        if settings.operator_model:
            self._operator = OperatorDelegate(app.runner, app.services, ledger)
        executor = CapabilityAgentExecutor(app.runner, app.jobs, ledger, self._operator, auth_enabled=settings.auth_enabled)
        handler = DefaultRequestHandler(
            agent_executor=executor,
            task_store=task_store,
            agent_card=card,
            **(push.handler_arguments() if push else {}),
        )
        await ledger.reconcile(task_store)
        self._ledger = ledger
        ledger.start_pruning(TASKS_TABLE, PUSH_TABLE if push else None,
                             every_s=settings.a2a_prune_interval_s, max_tasks=settings.a2a_max_tasks,
                             max_age_s=settings.a2a_task_retention_hours * 3600)  # fmt: skip
        rpc = [route for route in create_jsonrpc_routes(handler, rpc_url=RPC_PATH) if isinstance(route, Route)]
        rpc += [Route(f"{route.path}/", route.endpoint, methods=route.methods) for route in rpc]
        # Under the Mount the REST router sees the paths below /a2a/rest, as Mount(routes=...) gave it.
        return Router(agent_card_routes(card)), Router(rpc), Router(create_rest_routes(handler))


def _import_sdk() -> None:
    for name in UNUSED_A2A_MODULES:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  # None: "not installed"
    import a2a.server.request_handlers  # noqa: F401
    import a2a.server.routes  # noqa: F401

    import forge_mcp.agents.a2a_executor  # noqa: F401
    import forge_mcp.agents.a2a_operator  # noqa: F401
    import forge_mcp.agents.a2a_store  # noqa: F401
    import forge_mcp.agents.a2a_tasks  # noqa: F401
    import forge_mcp.protocols.a2a_card  # noqa: F401


@dataclass
class _Push:
    store: Any
    http: Any
    validator: Any

    def handler_arguments(self) -> dict[str, Any]:
        from a2a.server.tasks import BasePushNotificationSender

        sender = BasePushNotificationSender(self.http, self.store, push_url_validator=self.validator)
        return {"push_config_store": self.store, "push_sender": sender, "push_url_validator": self.validator}


def _push_notifications(settings: Any, database: Store) -> _Push | None:
    """A2A push notifications, when the operator allowed some hosts to receive them."""
    if not settings.push_allowed_hosts:
        return None
    import httpx

    from forge_mcp.agents.a2a_store import SqlitePushConfigStore
    from forge_mcp.protocols.a2a_push import allowlisted_push_urls

    store = SqlitePushConfigStore(database, auth_enabled=settings.auth_enabled)
    return _Push(store=store, http=httpx.AsyncClient(timeout=10.0), validator=allowlisted_push_urls(settings.push_allowed_hosts))
