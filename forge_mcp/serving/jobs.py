"""The serving job kinds: serve (a model behind an OpenAI-compatible endpoint, until stopped)
and generate (one answer from a version that no service runs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from forge_mcp.backends.serve import ServeResult
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources

SERVICE_MEMORY_GB = 1.0


class ServeArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str
    engine: str  # resolved at submission: never 'auto' here
    model_path: str
    adapter_path: str | None
    gguf_file: str | None  # llama.cpp: the export to load, workspace-relative
    port: int  # 0: any free one
    context_length: int
    external_command: list[str] | None  # vllm: the server's vllm_command setting
    startup_timeout_s: float
    gpus: int = 0
    threads: int | None = None


class GenerateArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str
    model_path: str
    adapter_path: str | None
    request: dict[str, Any]  # an OpenAI chat request, checked in the worker


class GenerateResult(BaseModel):
    response: dict[str, Any]


def serve_resources(arguments: ServeArguments) -> Resources:
    return Resources(gpus=arguments.gpus, memory_gb=SERVICE_MEMORY_GB)


def generate_resources(arguments: GenerateArguments) -> Resources:
    return Resources(memory_gb=SERVICE_MEMORY_GB)


def serve_model(job: JobContext, arguments: ServeArguments) -> ServeResult:
    from forge_mcp.backends.serve import serve

    root, workspace = job.workspace_root, job.workspace  # the folders are checked again where they are read
    adapter = workspace.resolve_tree(arguments.adapter_path, field="model") if arguments.adapter_path else None
    return serve(job, arguments.model_id, arguments.engine, workspace.resolve_tree(arguments.model_path, field="model"),
                 adapter, root / arguments.gguf_file if arguments.gguf_file else None, arguments.port,
                 arguments.context_length, arguments.external_command, arguments.startup_timeout_s,
                 arguments.threads)  # fmt: skip


def generate(job: JobContext, arguments: GenerateArguments) -> GenerateResult:
    # Here: the engine imports torch and transformers, the request model Starlette.
    from forge_mcp.backends.serve_engines import TransformersEngine
    from forge_mcp.serving.openai_app import ChatRequest

    workspace = job.workspace  # the folders are checked again where they are read
    adapter = workspace.resolve_tree(arguments.adapter_path, field="model") if arguments.adapter_path else None
    engine = TransformersEngine(workspace.resolve_tree(arguments.model_path, field="model"), adapter, arguments.model_id)
    return GenerateResult(response=engine.chat(ChatRequest.model_validate(arguments.request)))


SERVE = JobKind("serve", ServeArguments, ServeResult, serve_model, serve_resources, service=True)
GENERATE = JobKind("generate", GenerateArguments, GenerateResult, generate, generate_resources, warm=True)
