"""The services a capability may use, handed to it as its `services` argument.
Built once by the composition root (forge_mcp.app).

A tool body is one call into a domain service (system, jobs, datasets, training, …), with
the caller's principal where rights or ownership matter; the chat operator and workflows
call the same services in-process. The lower-level parts below them (the engine, the
registries, the workspace) are here for code that is not behind a service yet: publish
steps and the tools still being moved."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.capabilities import CapabilityRegistry
from forge_mcp.compute.service import ComputeService
from forge_mcp.datasets.service import DatasetService
from forge_mcp.flywheel.service import FlywheelService
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.service import JobService
from forge_mcp.models.evaluation_service import EvaluationService
from forge_mcp.models.export_service import ExportService
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.monitoring.service import MonitoringService
from forge_mcp.prompts.service import PromptService
from forge_mcp.rag.service import RagService
from forge_mcp.security.api_keys import ApiKeys
from forge_mcp.serving.service import ServingService
from forge_mcp.settings import Settings
from forge_mcp.store import Store
from forge_mcp.sweeps.service import SweepService
from forge_mcp.system.service import SystemService
from forge_mcp.traces.service import TraceService
from forge_mcp.training.service import TrainingService
from forge_mcp.workflows.service import WorkflowService
from forge_mcp.workspace import Workspace


@dataclass
class Services:
    # the domain services
    system: SystemService
    jobs: JobService
    datasets: DatasetService
    training: TrainingService
    sweeps: SweepService
    evaluation: EvaluationService
    models: ModelRegistry  # the registry service: register, list, read, promote, archive
    export: ExportService
    serving: ServingService
    workflows: WorkflowService
    traces: TraceService  # conversation traces: record, list, read, feedback
    flywheel: FlywheelService  # traces into datasets, and a judge's grades for unrated traces
    prompts: PromptService  # versioned prompt templates: save, list, diff, render (also MCP prompts)
    rag: RagService  # retrieval indexes: build (a job), query, list
    compute: ComputeService  # machines beyond this one: SSH hosts with pinned host keys
    monitoring: MonitoringService  # sampled load of this machine and the compute targets
    # below the services
    settings: Settings
    workspace: Workspace
    store: Store
    api_keys: ApiKeys
    registry: CapabilityRegistry
    engine: JobEngine
    started_at: float
