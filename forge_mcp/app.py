"""The composition root: the one place where settings become services and services
become the MCP server, the A2A handler and the HTTP app. Nothing else constructs them."""

from __future__ import annotations

import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from forge_mcp.api_keys import ApiKeys, ApiKeyVerifier
from forge_mcp.capabilities import CapabilityRegistry, CapabilityRunner
from forge_mcp.metrics import Metrics
from forge_mcp.services import Services
from forge_mcp.settings import Settings
from forge_mcp.store import Store
from forge_mcp.tools import all_toolsets
from forge_mcp.workspace import Workspace

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from forge_mcp.mcp_server import ForgeMCPServer

PROTECTED_PREFIXES = ("/mcp", "/a2a", "/metrics")
A2A_TASKS_TABLE = "a2a_tasks"


class ForgeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workspace = Workspace(settings.home, settings.import_roots)
        self.store = Store(self.workspace.database_path)
        self.api_keys = ApiKeys(self.store)
        self.registry = CapabilityRegistry(all_toolsets(), settings.toolsets)
        self.metrics = Metrics()
        self.services = Services(
            settings=settings,
            workspace=self.workspace,
            store=self.store,
            api_keys=self.api_keys,
            registry=self.registry,
            started_at=time.time(),
        )
        self.runner = CapabilityRunner(self.registry, self.services, self.metrics)

    async def start(self) -> None:
        self.workspace.create()
        await self.store.open()

    async def stop(self) -> None:
        await self.store.close()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[ForgeApp]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def mcp_server(self, *, over_http: bool) -> ForgeMCPServer:
        """stdio is trusted (the launching process is the boundary); HTTP follows the auth setting."""
        from forge_mcp.mcp_server import build_mcp_server

        return build_mcp_server(
            self.runner,
            auth_enabled=over_http and self.settings.auth_enabled,
            log_level=self.settings.log_level,
        )

    def http_app(self) -> Starlette:
        """One Starlette app: /mcp/ (Streamable HTTP), /a2a (JSON-RPC), /a2a/rest, the agent
        card, /health and /metrics. Its lifespan opens and closes this ForgeApp."""
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
        from a2a.server.tasks import DatabaseTaskStore
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
        from mcp.server.transport_security import RequestBodyLimitMiddleware
        from sqlalchemy.ext.asyncio import create_async_engine
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.authentication import AuthenticationMiddleware
        from starlette.routing import Mount, Route

        from forge_mcp.a2a_card import build_agent_card
        from forge_mcp.agents.a2a_executor import CapabilityAgentExecutor
        from forge_mcp.http_guards import AccessGuard, HostOriginGuard, RequestMetrics, TokenBuckets
        from forge_mcp.http_routes import health_endpoint, metrics_endpoint, transport_security
        from forge_mcp.request_scopes import scope_resolver

        settings = self.settings
        mcp = self.mcp_server(over_http=True)
        security = transport_security(settings)
        mcp_asgi = mcp.streamable_http_app(
            streamable_http_path="/",
            transport_security=security,
            host=settings.host,
            max_request_body_size=settings.max_body_bytes,
        )
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{self.workspace.database_path}", connect_args={"timeout": 10}
        )
        with warnings.catch_warnings():
            # a2a-sdk builds the model for a custom table name under the default model's class name.
            warnings.filterwarnings("ignore", message=".*declarative base already contains a class.*")
            task_store = DatabaseTaskStore(engine, table_name=A2A_TASKS_TABLE)
        card = build_agent_card(self.registry, settings)
        handler = DefaultRequestHandler(
            agent_executor=CapabilityAgentExecutor(self.runner, auth_enabled=settings.auth_enabled),
            task_store=task_store,
            agent_card=card,
        )

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            async with self.running():
                await task_store.initialize()
                async with mcp.session_manager.run():
                    yield
            await engine.dispose()

        middleware = [
            Middleware(RequestMetrics, metrics=self.metrics),
            Middleware(HostOriginGuard, settings=security),
            Middleware(RequestBodyLimitMiddleware, max_body_size=settings.max_body_bytes),
        ]
        if settings.auth_enabled:
            middleware += [
                Middleware(AuthenticationMiddleware, backend=BearerAuthBackend(ApiKeyVerifier(self.api_keys))),
                Middleware(AuthContextMiddleware),
            ]
        middleware.append(
            Middleware(
                AccessGuard,
                prefixes=PROTECTED_PREFIXES,
                auth_enabled=settings.auth_enabled,
                buckets=TokenBuckets(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None,
                resolve_scope=scope_resolver(self.registry),
            )
        )
        routes = [
            Route("/health", health_endpoint(self.store), methods=["GET"]),
            Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"]),
            *create_agent_card_routes(card),
            Mount("/mcp", app=mcp_asgi),
            *create_jsonrpc_routes(handler, rpc_url="/a2a"),
            # The REST routes end in a catch-all: keep them under their own prefix.
            Mount("/a2a/rest", routes=create_rest_routes(handler)),
        ]
        return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
