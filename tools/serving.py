"""Serving: a registered version behind an OpenAI-compatible endpoint on loopback, as a
long-lived job; list and stop services; a quick answer from a version or a service."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from forge_mcp.capabilities import Confirm, Toolset
from forge_mcp.compute.models import ComputeTarget
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.serving.records import Service
from forge_mcp.serving.service import Generated, ServiceList, ServiceStarted

toolset = Toolset("serving", "Serve model versions behind OpenAI-compatible endpoints; list, stop and query them.")

EngineChoice = Literal["auto", "llama_cpp", "transformers", "vllm", "mlx"]


@toolset.capability(scope="train", title="Serve a model version", long_running=True)
async def serve_start(
    services: Services,
    principal: Principal,
    model: Annotated[str, Field(max_length=80, description="A registered version: '<name>' (newest) or '<name>@v<N>'")],
    engine: Annotated[EngineChoice, Field(description="auto: vllm on a GPU when configured, llama_cpp when the version has a GGUF export, mlx on Apple silicon, else transformers")] = "auto",
    port: Annotated[int | None, Field(ge=1024, le=65535, description="Loopback port; default: a free one")] = None,
    context_length: Annotated[int, Field(ge=128, le=131_072, description="llama.cpp context window, in tokens")] = 2048,
    threads: Annotated[int | None, Field(ge=1, le=512, description="CPU threads for generation; default: the engine's own (llama.cpp: half the logical cores)")] = None,
    wait_s: Annotated[float, Field(ge=1, le=900, description="How long to wait for the endpoint to answer")] = 180,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
    compute: ComputeTarget = None,
) -> ServiceStarted:
    """Serves a registered version on 127.0.0.1 with an OpenAI-compatible API (/v1/chat/completions,
    streaming; /v1/models; /health) until serve_stop. Returns once it answers (loading: seconds to
    minutes, at most wait_s), with URL and own API key. llama_cpp serves the GGUF export
    (model_export gguf first); transformers and vllm apply a LoRA unmerged. A dead process shows as
    failed in serve_list. Any OpenAI client works, e.g. litellm with model 'openai/<model>' and
    api_base <url>. On an SSH compute target, the URL is a loopback tunnel here."""
    return await services.serving.start(principal, model, engine=engine, port=port, context_length=context_length,
                                        threads=threads, wait_s=wait_s, idempotency_key=idempotency_key, compute=compute)


@toolset.capability(scope="read", title="List services", read_only=True)
async def serve_list(
    services: Services,
    principal: Principal,
    include_ended: Annotated[bool, Field(description="Also stopped and failed services")] = False,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
) -> ServiceList:
    """Services with state (queued, starting, serving, stopped, failed), URL, a live health check,
    and why a failed one failed. Read-only."""
    return await services.serving.list(principal, include_ended=include_ended, limit=limit)


@toolset.capability(scope="train", title="Stop a service", destructive=True, idempotent=True)
async def serve_stop(
    services: Services, principal: Principal, confirm: Confirm,
    service: Annotated[str, Field(max_length=64, description="The service's job_id")],
) -> Service:
    """Stops a service: its process ends and its port is free when this returns. A stopped one is
    left as is. The user is asked to confirm where the client supports it; declined stops
    nothing."""
    return await services.serving.stop(principal, service, confirm)


@toolset.capability(scope="train", title="Generate an answer")
async def model_generate(
    services: Services,
    principal: Principal,
    prompt: Annotated[str, Field(min_length=1, max_length=20_000, description="The user message")],
    model: Annotated[str | None, Field(max_length=80, description="A registered version")] = None,
    service: Annotated[str | None, Field(max_length=64, description="Or a running service's job_id")] = None,
    system: Annotated[str | None, Field(max_length=20_000, description="An optional system message")] = None,
    max_tokens: Annotated[int, Field(ge=1, le=4096)] = 128,
    temperature: Annotated[float, Field(ge=0, le=2)] = 0.0,
) -> Generated:
    """One answer, for a quick look at a model (to measure it: model_evaluate). From a running
    service (fast), or a registered version: through its service if one runs, else a short
    transformers job that loads the model (seconds or more)."""
    return await services.serving.generate(principal, prompt, model=model, service=service, system=system,
                                           max_tokens=max_tokens, temperature=temperature)
