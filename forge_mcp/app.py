"""The composition root: the one place where settings become services and services
become the MCP server, the A2A handler and the HTTP app. Nothing else constructs them."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from forge_mcp.capabilities import CapabilityRegistry, CapabilityRunner
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.compute.service import ComputeService
from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.datasets.publish import PublishPreparedDataset
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.datasets.service import DatasetService
from forge_mcp.flywheel.publish import PublishTraceDatasets
from forge_mcp.flywheel.service import FlywheelService
from forge_mcp.hardware.capacity import engine_limits
from forge_mcp.jobs.catalog import JobCatalog
from forge_mcp.jobs.constants import WARM_LOG
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.events import JobEventBus, JobUpdate
from forge_mcp.jobs.executors.local import LocalExecutor
from forge_mcp.jobs.executors.ray import RayExecutor
from forge_mcp.jobs.executors.ssh import SshExecutor
from forge_mcp.jobs.executors.warm_pool import WarmPool
from forge_mcp.jobs.lock import EngineLock
from forge_mcp.jobs.publishing import Publisher
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.service import JobService
from forge_mcp.metrics import Metrics
from forge_mcp.models.evaluation_service import EvaluationService
from forge_mcp.models.export_service import ExportService
from forge_mcp.models.publish import PublishExport, StoreComparisonMetrics, StoreEvaluationMetrics
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.models.repository import ModelRepository
from forge_mcp.monitoring.prometheus import ForgeGauges
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.sampler import SystemSampler
from forge_mcp.monitoring.service import MonitoringService
from forge_mcp.orchestration.catalog import orchestration_kinds
from forge_mcp.orchestration.executor import ServerExecutor
from forge_mcp.orchestration.links import ChildLinks
from forge_mcp.prompts.defaults import packaged_defaults
from forge_mcp.prompts.repository import PromptRepository
from forge_mcp.prompts.service import PromptService
from forge_mcp.prompts.templates import TemplateEngine
from forge_mcp.rag.encoder import EncoderCache
from forge_mcp.rag.publish import PublishRagIndex
from forge_mcp.rag.service import RagService
from forge_mcp.security.api_keys import ApiKeys, ApiKeyVerifier
from forge_mcp.services import Services
from forge_mcp.serving.manager import ServingManager
from forge_mcp.serving.service import ServingService
from forge_mcp.settings import Settings
from forge_mcp.store import Store
from forge_mcp.sweeps.service import SweepService
from forge_mcp.system.service import SystemService
from forge_mcp.tools import all_toolsets, testing
from forge_mcp.traces.repository import TraceRepository
from forge_mcp.traces.service import TraceService
from forge_mcp.training.service import TrainingService
from forge_mcp.workflows.service import WorkflowService
from forge_mcp.workspace import Workspace

if TYPE_CHECKING:
    from mcp.server.subscriptions import SubscriptionBus
    from starlette.applications import Starlette

    from forge_mcp.protocols.mcp_server import ForgeMCPServer

log = logging.getLogger("forge_mcp.app")
PROTECTED_PREFIXES = ("/mcp", "/a2a", "/metrics")
ENGINE_LOCK = "engine.lock"
LISTEN_WAIT_S = 2.0


class ForgeApp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.workspace = Workspace(settings.home, settings.import_roots)
        self.store = Store(self.workspace.database_path)
        self.api_keys = ApiKeys(self.store)
        # The test-only toolset (start the test kinds) exists only where the test kinds do.
        toolsets = all_toolsets() + ([testing.toolset] if settings.test_job_kinds else [])
        self.registry = CapabilityRegistry(toolsets, settings.toolsets)
        self.metrics = Metrics()
        self.job_bus = JobEventBus()
        # Every kind in the catalog stays runnable (and recoverable) even when its toolset is not exposed.
        # Orchestration kinds are job kinds to the engine (their executor is the server itself).
        orchestrations = orchestration_kinds(test_kinds=settings.test_job_kinds)
        worker_kinds = JobCatalog(test_kinds=settings.test_job_kinds).load_all()
        kinds = {**worker_kinds, **orchestrations}
        job_repository = JobRepository(self.store)
        dataset_repository = DatasetRepository(self.store)
        self.datasets = DatasetImporter(self.workspace, dataset_repository)
        model_repository = ModelRepository(self.store)
        publisher = Publisher(kinds, {
            "dataset_prepare": PublishPreparedDataset(self.datasets, self.workspace.runs),
            "traces_to_dataset": PublishTraceDatasets(self.datasets, self.workspace),
            "evaluate": StoreEvaluationMetrics(model_repository),
            "compare": StoreComparisonMetrics(model_repository),
            "export": PublishExport(self.workspace, model_repository),
            "rag_index": PublishRagIndex(self.workspace),
        })  # fmt: skip
        limits = engine_limits(settings)
        warm = WarmPool(settings.warm_workers, [name for name, kind in worker_kinds.items() if kind.warm],
                        self.workspace.root / WARM_LOG, settings.warm_preload)  # fmt: skip
        local = LocalExecutor(self.workspace.root, limits.capacity, self.workspace.import_roots, warm)
        ssh = SshExecutor(self.workspace)
        ray = RayExecutor(self.workspace.root, self.workspace.import_roots)
        # Starts and cancels children through the engine, which is built with it: handed over as a provider.
        self.orchestrations = ServerExecutor(orchestrations, job_repository, ChildLinks(self.store), self.job_bus,
                                             lambda: self.jobs, local.worker_workspace, lambda: self.services,
                                             lambda: self.runner)  # fmt: skip
        self.jobs = JobEngine(
            job_repository,
            {local.name: local, ssh.name: ssh, ray.name: ray, self.orchestrations.name: self.orchestrations},
            self.job_bus,
            kinds,
            self.workspace.runs,
            limits,
            EngineLock(self.workspace.root / ENGINE_LOCK),
            self.workspace.scrub,
            publisher.publish,
            warm=warm,
        )
        self.models = ModelRegistry(self.workspace, model_repository, self.jobs)
        compute = ComputeRepository(self.store)
        self.serving = ServingManager(settings, self.workspace, self.jobs, self.models, compute)
        started_at = time.time()
        training = TrainingService(self.workspace, dataset_repository, self.jobs, job_repository, compute)
        evaluation = EvaluationService(self.workspace, self.models, dataset_repository, self.jobs)
        traces = TraceService(TraceRepository(self.store))
        workflows = WorkflowService(self.workspace, self.registry, self.jobs, publisher.result_models())
        samples = SampleRepository(self.store)
        # Only the server that supervises the workspace's jobs samples: a second one would write each row twice.
        self.sampler = SystemSampler(samples, compute, self.workspace, interval_s=settings.monitor_interval_s,
                                     retention_s=settings.monitor_retention_hours * 3600,
                                     may_sample=lambda: self.jobs.active)  # fmt: skip
        self.metrics.register(ForgeGauges(self.store, self.jobs, samples, interval_s=settings.monitor_interval_s))
        self.services = Services(
            system=SystemService(self.workspace, self.registry, self.jobs, job_repository, dataset_repository,
                                 auth_enabled=settings.auth_enabled, started_at=started_at),  # fmt: skip
            jobs=JobService(self.jobs, job_repository),
            datasets=DatasetService(self.workspace, dataset_repository, self.datasets, self.jobs),
            training=training,
            sweeps=SweepService(self.workspace, training, evaluation, self.jobs),
            evaluation=evaluation,
            models=self.models,
            export=ExportService(self.workspace, self.models, self.jobs),
            serving=ServingService(self.serving, self.models, self.jobs),
            workflows=workflows,
            traces=traces,
            flywheel=FlywheelService(self.workspace, traces, self.jobs, self.models, dataset_repository, evaluation,
                                     workflows),  # fmt: skip
            prompts=PromptService(PromptRepository(self.store), TemplateEngine(), packaged_defaults()),
            rag=RagService(self.workspace, dataset_repository, self.models, self.jobs, EncoderCache()),
            compute=ComputeService(self.workspace, compute, [ssh.set_targets, ray.set_targets]),
            monitoring=MonitoringService(samples, self.sampler, compute),
            settings=settings,
            workspace=self.workspace,
            store=self.store,
            api_keys=self.api_keys,
            registry=self.registry,
            engine=self.jobs,
            started_at=started_at,
        )
        self.runner = CapabilityRunner(self.registry, self.services, self.metrics)
        self._background: set[asyncio.Task[None]] = set()
        # Set by the HTTP server once its socket accepts; binds to a loop only when first awaited.
        self.listening = asyncio.Event()

    async def start(self, *, engine: bool = True) -> None:
        self.workspace.create()
        await self.store.open()
        await self.services.prompts.seed_defaults()  # operator-system and the other packaged prompts
        await self.services.compute.refresh()  # before the engine: it re-attaches jobs on compute targets
        self.datasets.clean_staging()
        if engine:
            await self.jobs.start()
            self.sampler.start()

    async def stop(self) -> None:
        await self.sampler.stop()
        await self.jobs.stop()
        await self.orchestrations.close()  # once nothing polls them, before the store closes; the next server re-attaches them
        await self.store.close()

    @asynccontextmanager
    async def running(self, *, engine: bool = True) -> AsyncIterator[ForgeApp]:
        """Open the workspace; with `engine`, also take part in supervising its jobs."""
        await self.start(engine=engine)
        try:
            yield self
        finally:
            await self.stop()

    def mcp_server(self, *, over_http: bool, tools_later: bool = False) -> ForgeMCPServer:
        """stdio is trusted (the launching process is the boundary); HTTP follows the auth setting.
        With `tools_later`, the caller adds the tools (add_capability_tools) before serving."""
        from forge_mcp.protocols.mcp_logging import McpLogRelay
        from forge_mcp.protocols.mcp_server import build_mcp_server

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
            tools_later=tools_later,
            prompts=self.services.prompts,
        )

    def _resource_updates(self) -> SubscriptionBus:
        """MCP `subscriptions/listen` streams hear about every job change as resource updates
        of forge://jobs/{id} (and /metrics when metrics arrive, /logs with progress), and that the
        prompt list changed when a prompt gets a new version."""
        from mcp.server.subscriptions import InMemorySubscriptionBus
        from mcp.shared.subscriptions import PromptsListChanged, ResourceUpdated, ServerEvent

        bus = InMemorySubscriptionBus()

        def publish(event: ServerEvent) -> None:
            task = asyncio.get_running_loop().create_task(bus.publish(event))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

        def on_update(update: JobUpdate) -> None:
            base = f"forge://jobs/{update.job.id}"
            uris = [base, f"{base}/metrics"] if update.what == "metrics" else [base, f"{base}/logs"]
            for uri in uris:
                publish(ResourceUpdated(uri=uri))

        self.job_bus.add_listener(on_update)
        self.services.prompts.add_listener(lambda name: publish(PromptsListChanged()))
        return bus

    def http_app(self) -> Starlette:
        """One Starlette app: /mcp/ (Streamable HTTP), /a2a (JSON-RPC), /a2a/rest, the agent
        card, /health and /metrics. Its lifespan opens and closes this ForgeApp. What /health does
        not need is built once the server is up: the MCP side (the SDK and the tools' schemas,
        mcp_side), then the A2A side (a2a_side); /mcp and /a2a requests that arrive before wait for it."""
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.routing import Route

        from forge_mcp.protocols.a2a_side import A2ASide
        from forge_mcp.protocols.http_guards import HttpGate, TokenBuckets
        from forge_mcp.protocols.http_routes import health_endpoint, host_origin_policy, metrics_endpoint
        from forge_mcp.protocols.mcp_side import McpSide
        from forge_mcp.protocols.request_scopes import scope_resolver

        settings = self.settings
        policy = host_origin_policy(settings)
        mcp = McpSide(self)
        a2a = A2ASide(self)

        async def finish_start() -> None:
            # Once the server listens (http_server says so): this CPU work would otherwise slow the way
            # to the first answer. A host that never says gets it after LISTEN_WAIT_S.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_WAIT_S):
                    await self.listening.wait()
            await mcp.start()
            a2a.start()  # after the tools, so that MCP is ready first
            await a2a.built()
            _freeze_start_up_objects()

        @asynccontextmanager
        async def lifespan(_: Any) -> AsyncIterator[None]:
            async with self.running():
                finishing = asyncio.get_running_loop().create_task(finish_start())
                try:
                    yield
                finally:
                    finishing.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await finishing
                    await mcp.stop()
                    await a2a.stop()
            await a2a.close()

        # Metrics, Host/Origin, body limit, authentication, access (rate, scope) and JSON depth: one layer.
        gate = Middleware(
            HttpGate,
            metrics=self.metrics,
            policy=policy,
            max_body_bytes=settings.max_body_bytes,
            authenticate=functools.partial(mcp.bearer_backend, ApiKeyVerifier(self.api_keys)) if settings.auth_enabled else None,
            prefixes=PROTECTED_PREFIXES,
            buckets=TokenBuckets(settings.rate_limit_per_minute) if settings.rate_limit_per_minute else None,
            resolve_scope=scope_resolver(self.registry),
        )
        routes = [
            Route("/health", health_endpoint(self.store), methods=["GET"]),
            Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"]),
            *a2a.card_routes(),
            *mcp.routes(),
            *a2a.protocol_routes(),
        ]
        return Starlette(routes=routes, middleware=[gate], lifespan=lifespan)


def _freeze_start_up_objects() -> None:
    """Move everything start-up made (modules, the tools' models and schemas, the A2A side) out
    of the garbage collector's reach. They live as long as the server, yet every full
    collection walked them all again, and requests allocate enough to trigger one often: with
    50 MCP clients the server spent about a quarter of its CPU per call there."""
    import gc

    gc.collect()
    gc.freeze()
