"""Export a registered model version: its LoRA adapter, a merged safetensors folder, or a
GGUF file (f16, q8_0, q4_k_m) with an Ollama Modelfile; every export verified against the
source model."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from forge_mcp.backends.export import Format, Quantization
from forge_mcp.capabilities import Toolset
from forge_mcp.compute.models import ComputeTarget
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
    compute: ComputeTarget = None,
) -> JobHandle:
    """Exports a registered version to run elsewhere: adapter (LoRA files), merged (adapter folded
    into the base, for transformers) or gguf (llama.cpp and Ollama, with a Modelfile: f16, q8_0 near
    lossless, q4_k_m ~3x smaller; serve_start's llama_cpp needs it). Each export is loaded back and
    its next-token predictions checked against the source; a mismatch fails the job. Lands in
    models/<name>/v<N>/exports/<kind>/. A job that loads the model: minutes; follow with
    job_wait."""
    return await services.export.export(principal, model, format, quantization=quantization, push_to_hub=push_to_hub,
                                        idempotency_key=idempotency_key, compute=compute)
