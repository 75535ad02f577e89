"""Export a registered model version: its LoRA adapter, a merged safetensors folder, or a
GGUF file (f16, q8_0, q4_k_m) with an Ollama Modelfile; every export verified against the
source model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from forge_mcp.backends.export import Format, Quantization
from forge_mcp.capabilities import Toolset
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("export", "Export model versions as adapters, merged folders or GGUF files, each verified.")


@toolset.capability(scope="train", title="Export a model version", long_running=True, job_kind="export")
async def model_export(
    services: Services,
    principal: Principal,
    model: Annotated[str, Field(max_length=80, description="A registered version: '<name>' (newest) or '<name>@v<N>'")],
    format: Annotated[Format, Field(description="adapter (LoRA files), merged (safetensors folder) or gguf (llama.cpp, Ollama)")],
    quantization: Annotated[Quantization | None, Field(description="GGUF only: f16, q8_0 (default) or q4_k_m")] = None,
    push_to_hub: Annotated[str | None, Field(max_length=200, description="Also upload to this Hugging Face Hub repo, e.g. acme/bot (needs network and HF_TOKEN)")] = None,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Starts a job that exports a registered version: adapter (the LoRA files), merged (the
    adapter folded into the base: a folder transformers loads) or gguf (one file for llama.cpp
    and Ollama: f16, q8_0 near lossless or q4_k_m about 3x smaller, with a Modelfile). Each
    export is loaded back and its next-token predictions compared with the source's; an export
    that disagrees fails the job. It lands in models/<name>/v<N>/exports/<kind>/ (model_get
    lists it). Follow with job_wait."""
    return await services.export.export(principal, model, format, quantization=quantization, push_to_hub=push_to_hub,
                                        idempotency_key=idempotency_key)
