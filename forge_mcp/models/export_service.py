"""Exporting a registered version for a caller: check the format against the version and the
installed extras (and, for a Hub upload, the token and the repo) before anything is queued,
then start the export job as the caller's. The job verifies its export; its publish step
files it under the version (forge_mcp.models.publish)."""

from __future__ import annotations

import asyncio

from forge_mcp.backends.export import Format, Quantization
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.models.hub import check_hub_push
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.security.principal import Principal
from forge_mcp.workspace import Workspace

EXPORT_KIND = "export"
DEFAULT_GGUF_QUANTIZATION: Quantization = "q8_0"


class ExportService:
    def __init__(self, workspace: Workspace, models: ModelRegistry, engine: JobEngine) -> None:
        self._workspace = workspace
        self._models = models
        self._engine = engine

    async def export(
        self,
        principal: Principal,
        model: str,
        format: Format,
        *,
        quantization: Quantization | None = None,
        push_to_hub: str | None = None,
        idempotency_key: str | None = None,
        compute: str | None = None,
    ) -> JobHandle:
        """Start the export of `model` ('<name>' or '<name>@v<N>') as `format`; GGUF defaults to q8_0."""
        require_extra("train", "model_export")
        if format != "gguf" and quantization is not None:
            raise InvalidArguments(f"quantization: only GGUF exports are quantised; leave it out for format {format}")
        if format == "gguf":
            quantization = quantization or DEFAULT_GGUF_QUANTIZATION
            if quantization != "f16":
                require_extra("llamacpp", f"GGUF {quantization} quantisation")
        version, model_path, adapter_path = await self._models.weights(model)
        if format == "adapter" and adapter_path is None:
            raise InvalidArguments(f"format: {version.id} holds full weights, not an adapter; export 'merged' or 'gguf'")
        if push_to_hub is not None:
            await asyncio.to_thread(check_hub_push, push_to_hub)
        weights = self._workspace.resolve(model_path, field="model")
        arguments = {"model_id": version.id, "model_path": model_path, "adapter_path": adapter_path, "format": format,
                     "quantization": quantization, "push_to_hub": push_to_hub,
                     "weight_bytes": sum(f.stat().st_size for f in weights.glob("*.safetensors"))}  # fmt: skip
        return await self._engine.submit(EXPORT_KIND, arguments, principal.name, idempotency_key=idempotency_key,
                                         host=compute)  # fmt: skip
