"""The composition root: the one place where settings become services and services
become the MCP server, the A2A handler and the HTTP app. Nothing else constructs them."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forge_mcp.api_keys import ApiKeys, ApiKeyVerifier
from forge_mcp.capabilities import CapabilityRegistry, CapabilityRunner
from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.engine import EngineLimits, JobEngine
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.executor import LocalExecutor
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.metrics import Metrics
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.models.repository import ModelRepository
from forge_mcp.services import Services
from forge_mcp.serving.manager import ServingManager
from forge_mcp.settings import Settings
from forge_mcp.store import Store
from forge_mcp.tools import all_toolsets
from forge_mcp.workspace import Workspace

if TYPE_CHECKING:
    from mcp.server.subscriptions import SubscriptionBus
    from starlette.applications import Starlette

    from forge_mcp.mcp_server import ForgeMCPServer

PROTECTED_PREFIXES = ("/mcp", "/a2a", "/metrics")
ENGINE_LOCK = "engine.lock"
A2A_TASKS_TABLE = "a2a_tasks"
A2A_PUSH_TABLE = "a2a_push_configs"


class ForgeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workspace = Workspace(settings.home, settings.import_roots)
        self.store = Store(self.workspace.database_path)
        self.api_keys = ApiKeys(self.store)
        toolsets = all_toolsets()
        self.registry = CapabilityRegistry(toolsets, settings.toolsets)
        self.metrics = Metrics()
        self.job_bus = JobEventBus()
        # Every installed job kind stays runnable (and recoverable) even when its toolset is not exposed.
        kinds = {kind.name: kind for toolset in toolsets for kind in toolset.job_kinds}
        self.jobs = JobEngine(
            JobRepository(self.store),
            LocalExecutor(self.workspace.root, self.workspace.import_roots),
            self.job_bus,
            kinds,
            self.workspace.root / "runs",
            _engine_limits(settings),
            EngineLock(self.workspace.root / ENGINE_LOCK),
            self.workspace.scrub,
        )
        self.datasets = DatasetImporter(self.workspace, DatasetRepository(self.store))
        self.models = ModelRegistry(self.workspace, ModelRepository(self.store), self.jobs.repo)
        self.serving = ServingManager(settings, self.workspace, self.jobs, self.models)
        self.services = Services(
            settings=settings,
            workspace=self.workspace,
            store=self.store,
            api_keys=self.api_keys,
            registry=self.registry,
            jobs=self.jobs,
            datasets=self.datasets,
            models=self.models,
            serving=self.serving,
            started_at=time.time(),
        )
        self.jobs.services = self.services  # publish hooks run with the services (built after the engine)
        self.runner = CapabilityRunner(self.registry, self.services, self.metrics)
        self._background: set[asyncio.Task[None]] = set()

    async def start(self, *, engine: bool = True) -> None:
        self.workspace.create()
        await self.store.open()
        self.datasets.clean_staging()
        if engine:
            await self.jobs.start()

    async def stop(self) -> None:
        await self.jobs.stop()
        await self.store.close()

    @asynccontextmanager
    async def running(self, *, engine: bool = True) -> AsyncIterator[ForgeApp]:
        """Open the workspace; with `engine`, also take part in supervising its jobs."""
        await self.start(engine=engine)
        try:
            yield self
        finally:
            await self.stop()

    def mcp_server(self, *, over_http: bool) -> ForgeMCPServer:
        """stdio is trusted (the launching process is the boundary); HTTP follows the auth setting."""
        from forge_mcp.mcp_logging import McpLogRelay
        from forge_mcp.mcp_server import build_mcp_server

        auth_enabled = over_http and self.settings.auth_enabled
        relay = McpLogRelay(auth_enabled=auth_enabled)
        relay.install()
        self.job_bus.add_listener(relay.on_job_update)
        return build_mcp_server(
            self.runner,
            auth_enabled=auth_enabled,
            log_level=self.settings.log_level,
            subscriptions=self._resource_updates(),
            log_relay=relay,
        )

    def _resource_updates(self) -> SubscriptionBus:
        """MCP `subscriptions/listen` streams hear about every job change as resource updates
        of forge://jobs/{id} (and /metrics when metrics arrive, /logs with progress)."""
        from mcp.server.subscriptions import InMemorySubscriptionBus
        from mcp.shared.subscriptions import ResourceUpdated

        bus = InMemorySubscriptionBus()

        def on_update(update: JobUpdate) -> None:
            base = f"forge://jobs/{update.job.id}"
            uris = [base, f"{base}/metrics"] if update.what == "metrics" else [base, f"{base}/logs"]
            for uri in uris:
                task = asyncio.get_running_loop().create_task(bus.publish(ResourceUpdated(uri=uri)))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        self.job_bus.add_listener(on_update)
        return bus

    def http_app(self) -> Starlette:
        """One Starlette app: /mcp/ (Streamable HTTP), /a2a (JSON-RPC), /a2a/rest, the agent
        card, /health and /metrics. Its lifespan opens and closes this ForgeApp."""
        from a2a.server.request_handlers import DefaultRequestHandler
        from a2a.server.routes import create_jsonrpc_routes, create_rest_routes
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
        from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
        from sqlalchemy.ext.asyncio import create_async_engine
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.middleware.authentication import AuthenticationMiddleware
        from starlette.routing import Mount, Route

        from forge_mcp.a2a_card import build_agent_card
        from forge_mcp.agents.a2a_executor import CapabilityAgentExecutor
        from forge_mcp.agents.a2a_owners import OwnedTaskStore
        from forge_mcp.agents.a2a_tasks import A2ATaskLedger
        from forge_mcp.http_guards import AccessGuard, HostOriginGuard, JsonDepthGuard, RequestMetrics, TokenBuckets
        from forge_mcp.http_routes import agent_card_routes, health_endpoint, host_origin_policy, metrics_endpoint
        from forge_mcp.request_scopes import scope_resolver

        settings = self.settings
        mcp = self.mcp_server(over_http=True)
        policy = host_origin_policy(settings)
        mcp_asgi = mcp.streamable_http_app(
            streamable_http_path="/",
            # HostOriginGuard checks Host and Origin exactly on every route, /mcp/ included,
            # before anything else runs; the SDK's own check (a prefix match) would only
            # disagree with it, so it is off. Its Content-Type check for POST stays on.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            host=settings.host,
            max_request_body_size=settings.max_body_bytes,
        )
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{self.workspace.database_path}", connect_args={"timeout": 10}
        )
        with warnings.catch_warnings():
            # a2a-sdk builds the model for a custom table name under the default model's class name.
            warnings.filterwarnings("ignore", message=".*declarative base already contains a class.*")
            task_store = OwnedTaskStore(engine, table_name=A2A_TASKS_TABLE, auth_enabled=settings.auth_enabled)
        card = build_agent_card(self.registry, settings)
        ledger = A2ATaskLedger(self.store, self.jobs)
        push = _push_notifications(settings, engine)
        handler = DefaultRequestHandler(
            agent_executor=CapabilityAgentExecutor(self.runner, self.jobs, ledger, auth_enabled=settings.auth_enabled),
            task_store=task_store,
            agent_card=card,
            **(push.handler_arguments() if push else {}),
        )

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            async with self.running():
                await task_store.initialize()
                if push:
                    await push.store.initialize()
                await ledger.reconcile(task_store)
                ledger.start_pruning(A2A_TASKS_TABLE, A2A_PUSH_TABLE if push else None,
                                     every_s=settings.a2a_prune_interval_s, max_tasks=settings.a2a_max_tasks,
                                     max_age_s=settings.a2a_task_retention_hours * 3600)  # fmt: skip
                async with mcp.session_manager.run():
                    yield
                await ledger.stop()
            if push:
                await push.http.aclose()
            await engine.dispose()

        middleware = [
            Middleware(RequestMetrics, metrics=self.metrics),
            Middleware(HostOriginGuard, policy=policy),
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
        middleware.append(Middleware(JsonDepthGuard))
        rpc = [route for route in create_jsonrpc_routes(handler, rpc_url="/a2a") if isinstance(route, Route)]
        routes = [
            Route("/health", health_endpoint(self.store), methods=["GET"]),
            Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"]),
            *agent_card_routes(card),
            Mount("/mcp", app=mcp_asgi),
            *rpc,
            # Both spellings answer: a redirect from /a2a/ to /a2a would lose a POST on the way.
            *[Route(f"{route.path}/", route.endpoint, methods=route.methods) for route in rpc],
            # The REST routes end in a catch-all: keep them under their own prefix.
            Mount("/a2a/rest", routes=create_rest_routes(handler)),
        ]
        return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def _engine_limits(settings: Settings) -> EngineLimits:
    import psutil

    from forge_mcp.backends.hardware import gpu_count

    memory = settings.job_memory_gb or round(0.9 * psutil.virtual_memory().total / 1024**3, 1)
    return EngineLimits(
        capacity=Capacity(
            gpu_slots=settings.gpu_slots if settings.gpu_slots is not None else gpu_count(),
            cpu_slots=settings.cpu_job_slots,
            memory_gb=memory,
            service_slots=settings.service_slots,
        ),
        max_queued_per_principal=settings.max_queued_per_principal,
        max_attempts=settings.job_max_attempts,
        heartbeat_s=settings.job_heartbeat_s,
        lease_s=settings.job_lease_s,
        cancel_grace_s=settings.job_cancel_grace_s,
    )


@dataclass
class _Push:
    store: Any
    http: Any
    validator: Any

    def handler_arguments(self) -> dict[str, Any]:
        from a2a.server.tasks import BasePushNotificationSender

        sender = BasePushNotificationSender(self.http, self.store, push_url_validator=self.validator)
        return {"push_config_store": self.store, "push_sender": sender, "push_url_validator": self.validator}


def _push_notifications(settings: Settings, engine: Any) -> _Push | None:
    """A2A push notifications, when the operator allowed some hosts to receive them."""
    if not settings.push_allowed_hosts:
        return None
    import httpx

    from forge_mcp.a2a_push import allowlisted_push_urls
    from forge_mcp.agents.a2a_owners import OwnedPushConfigStore

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*declarative base already contains a class.*")
        store = OwnedPushConfigStore(engine, table_name=A2A_PUSH_TABLE, auth_enabled=settings.auth_enabled)
    return _Push(store=store, http=httpx.AsyncClient(timeout=10.0), validator=allowlisted_push_urls(settings.push_allowed_hosts))
