"""Export a registered model version: its LoRA adapter, a merged safetensors folder, or a
GGUF file (f16, q8_0, q4_k_m) with an Ollama Modelfile; every export verified against the
source model."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import Field

from forge_mcp.backends.export import ExportResult, Format, Quantization
from forge_mcp.capabilities import Toolset
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.models.hub import check_hub_push
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("export", "Export model versions as adapters, merged folders or GGUF files, each verified.")
GIB = 1024**3


def _export_resources(arguments: dict[str, Any]) -> Resources:
    # Source weights, a merged copy and the export, as f32, plus the runtime.
    return Resources(memory_gb=round(0.6 + 3 * arguments.get("weight_bytes", 0) / GIB, 2))


async def _publish_export(services: Services, job: Any, result: dict[str, Any]) -> dict[str, Any]:
    export = await services.models.publish_export(job.arguments["model_id"], job.id, result)
    return {**result, "path": export.path}


@toolset.job_kind("export", resources=_export_resources, publish=_publish_export)
def export_job(job: JobContext, model_id: str, model_path: str, adapter_path: str | None, format: Format,
               quantization: Quantization | None, push_to_hub: str | None = None, weight_bytes: int = 0) -> ExportResult:  # fmt: skip
    from forge_mcp.backends.export import export

    workspace = job.workspace  # the folders are checked again where they are read
    return export(job, model_id, workspace.resolve_tree(model_path, field="model"),
                  workspace.resolve_tree(adapter_path, field="model") if adapter_path else None, format, quantization,
                  push_to_hub)  # fmt: skip


@toolset.capability(scope="train", title="Export a model version", long_running=True)
async def model_export(
    services: Services,
    principal: Principal,
    model: Annotated[str, Field(max_length=80, description="A registered version: '<name>' (newest) or '<name>@v<N>'")],
    format: Annotated[Format, Field(description="adapter (LoRA files), merged (safetensors folder) or gguf (llama.cpp, Ollama)")],
    quantization: Annotated[Quantization | None, Field(description="GGUF only: f16, q8_0 (default) or q4_k_m")] = None,
    push_to_hub: Annotated[str | None, Field(max_length=200, description="Also upload to this Hugging Face Hub repo, e.g. acme/bot (needs network and HF_TOKEN)")] = None,
) -> JobHandle:
    """Starts a job that exports a registered version: adapter (the LoRA files), merged (the
    adapter folded into the base: a folder transformers loads) or gguf (one file for llama.cpp
    and Ollama: f16, q8_0 near lossless or q4_k_m about 3x smaller, with a Modelfile). Each
    export is loaded back and its next-token predictions compared with the source's; an export
    that disagrees fails the job. It lands in models/<name>/v<N>/exports/<kind>/ (model_get
    lists it). Follow with job_wait."""
    require_extra("train", "model_export")
    if format != "gguf" and quantization is not None:
        raise InvalidArguments(f"quantization: only GGUF exports are quantised; leave it out for format {format}")
    if format == "gguf":
        quantization = quantization or "q8_0"
        if quantization != "f16":
            require_extra("llamacpp", f"GGUF {quantization} quantisation")
    version, model_path, adapter_path = await services.models.weights(model)
    if format == "adapter" and adapter_path is None:
        raise InvalidArguments(f"format: {version.id} holds full weights, not an adapter; export 'merged' or 'gguf'")
    if push_to_hub is not None:
        await asyncio.to_thread(check_hub_push, push_to_hub)
    weights = services.workspace.resolve(model_path, field="model")
    arguments = {"model_id": version.id, "model_path": model_path, "adapter_path": adapter_path, "format": format,
                 "quantization": quantization, "push_to_hub": push_to_hub,
                 "weight_bytes": sum(f.stat().st_size for f in weights.glob("*.safetensors"))}  # fmt: skip
    return await services.jobs.submit("export", arguments, principal.name)
