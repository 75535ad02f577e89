"""The services a capability may use, handed to it as its `services` argument.
Built once by the composition root (forge_mcp.app)."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.capabilities import CapabilityRegistry
from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.security.api_keys import ApiKeys
from forge_mcp.serving.manager import ServingManager
from forge_mcp.settings import Settings
from forge_mcp.store import Store
from forge_mcp.workspace import Workspace


@dataclass
class Services:
    settings: Settings
    workspace: Workspace
    store: Store
    api_keys: ApiKeys
    registry: CapabilityRegistry
    jobs: JobEngine
    datasets: DatasetImporter
    models: ModelRegistry
    serving: ServingManager
    started_at: float
