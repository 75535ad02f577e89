"""Services as the server sees them: start a serving job for a registered version (picking
the engine), wait until it listens, list services with a live health check, stop them.

A service is a job of kind `serve`: its state is the job's (RUNNING is starting or serving,
CANCELED is stopped, FAILED is failed), its endpoint is what the job wrote to
its run's service.json once it listened."""

from __future__ import annotations

import asyncio
import importlib.util
import platform
import sys
import time
from typing import TYPE_CHECKING, Any

from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.errors import Conflict, InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.constants import LOCAL_TARGET
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.states import JobState
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.security.principal import Principal
from forge_mcp.serving.records import Endpoint, Service, read_endpoint
from forge_mcp.settings import Settings
from forge_mcp.workspace import Workspace

if TYPE_CHECKING:
    import httpx  # imported where used: the server's start does not need it

SERVE_KIND = "serve"
READY_POLL_S = 0.25
HEALTH_TIMEOUT_S = 2.0
GGUF_PREFERENCE = ("gguf-q8_0", "gguf-f16", "gguf-q4_k_m")


class ServingManager:
    def __init__(self, settings: Settings, workspace: Workspace, jobs: JobEngine, models: ModelRegistry,
                 targets: ComputeRepository) -> None:  # fmt: skip
        self.settings = settings
        self.workspace = workspace
        self.jobs = jobs
        self.models = models
        self.targets = targets

    async def arguments(self, model: str, engine: str, port: int | None, context_length: int,
                        threads: int | None = None, compute: str | None = None) -> dict[str, Any]:  # fmt: skip
        """What a serve job runs: the version's weights, the engine (auto resolved) and, for
        llama.cpp, the GGUF export to load. On a compute target the engine is checked against
        that machine (its last probe), not this one."""
        version, model_path, adapter_path = await self.models.weights(model)
        exports = {e.key: e for e in await self.models.repo.exports(version.id)}
        gguf = next((exports[k] for k in GGUF_PREFERENCE if k in exports), None)
        if compute not in (None, LOCAL_TARGET):
            engine = await self._engine_there(compute, engine)
        else:
            engine = self._engine_here(engine, gguf is not None, adapter_path is not None)
        if engine == "llama_cpp" and gguf is None:
            raise InvalidArguments(f"engine: {version.id} has no GGUF export for llama.cpp; run model_export with "
                                   "format gguf first, or use engine transformers")  # fmt: skip
        if engine == "mlx" and adapter_path is not None and not self.workspace.resolve(adapter_path, field="model").joinpath("adapters.safetensors").is_file():
            raise InvalidArguments(f"engine: {version.id} is a PEFT adapter, which mlx-lm cannot load; export it "
                                   "merged and register that, or use engine transformers")  # fmt: skip
        return {"model_id": version.id, "engine": engine, "model_path": model_path, "adapter_path": adapter_path,
                "gguf_file": f"{gguf.path}/{gguf.file}" if engine == "llama_cpp" and gguf else None,
                "port": port or 0, "context_length": context_length, "threads": threads,
                "external_command": self.settings.vllm_command if engine == "vllm" else None,
                "gpus": 1 if engine == "vllm" and _gpu_count() > 0 else 0,  # vllm runs here only
                "startup_timeout_s": self.settings.serve_startup_timeout_s}  # fmt: skip

    def _engine_here(self, engine: str, has_gguf: bool, is_adapter: bool) -> str:
        """`auto` resolved with this machine's facts, and the extra (or setting) the engine needs here."""
        if engine == "auto":
            engine = self._auto_engine(has_gguf, is_adapter)
        if engine == "llama_cpp":
            require_extra("llamacpp", "engine llama_cpp")
        elif engine == "vllm":
            if not self.settings.vllm_command:
                raise InvalidArguments("engine: vllm runs from its own environment, and the server has no vllm_command "
                                       "setting; set FORGE_VLLM_COMMAND (see configs/server/default.yaml), or use "
                                       "engine transformers or llama_cpp")  # fmt: skip
        elif engine == "mlx":
            require_extra("mlx", "engine mlx")
        else:
            require_extra("train", "engine transformers")
        return engine

    async def _engine_there(self, compute: str, engine: str) -> str:
        """The engine for a service on compute target `compute`. `auto` is transformers there: the
        probe does not say which serving libraries that machine has, and llama.cpp or mlx are
        for the caller to ask for. vllm_command is a command on this machine, so vllm is refused.
        An unknown target is left for the job's submission to refuse, naming the targets."""
        target = await self.targets.get(compute)
        probe = (target.probe if target is not None else None) or {}
        if target is not None and target.ray is not None and target.ray.address.startswith("ray://"):
            raise InvalidArguments(f"compute: {compute} is reached through Ray Client (ray://), so a service there would "
                                   "listen on a node this server cannot reach; serve on an SSH target, or add the "
                                   "cluster by its GCS address (host:6379) from a machine that is one of its nodes")  # fmt: skip
        if engine == "vllm":
            raise InvalidArguments(f"engine: vllm runs this server's vllm_command, a command on this machine, not on "
                                   f"{compute}; use engine transformers or llama_cpp there")  # fmt: skip
        if engine == "mlx" and not str(probe.get("os") or "").startswith("macOS"):
            raise InvalidArguments(f"engine: mlx needs Apple Silicon, and {compute}'s last probe found "
                                   f"{probe.get('os') or 'no OS'}; use engine transformers there")  # fmt: skip
        return "transformers" if engine == "auto" else engine

    def _auto_engine(self, has_gguf: bool, is_adapter: bool) -> str:
        if self.settings.vllm_command and _gpu_count() > 0:
            return "vllm"
        if has_gguf and importlib.util.find_spec("llama_cpp") is not None:
            return "llama_cpp"
        apple = sys.platform == "darwin" and platform.machine() == "arm64"
        if apple and not is_adapter and importlib.util.find_spec("mlx_lm") is not None:
            return "mlx"
        return "transformers"

    async def wait_ready(self, job_id: str, timeout_s: float) -> tuple[Job, Endpoint | None]:
        """Until the service answers /health, fails, or `timeout_s` passes."""
        deadline = time.monotonic() + timeout_s
        async with _health_client() as client:  # one client for every probe: building one loads TLS certificates
            while True:
                job = await self.jobs.repo.get(job_id)
                endpoint = read_endpoint(self.workspace.run(job_id))
                if job.terminal:
                    return job, None
                if endpoint is not None and job.state is JobState.RUNNING and await healthy(endpoint, client):
                    return job, endpoint
                if time.monotonic() > deadline:
                    return job, None
                await asyncio.sleep(READY_POLL_S)

    async def list(self, include_ended: bool, limit: int, principal: Principal) -> list[Service]:
        """The services `principal` may see: their own (an admin's: all)."""
        states = () if include_ended else (JobState.QUEUED, JobState.RUNNING)
        jobs = await self.jobs.list(principal, states, kind=SERVE_KIND, limit=limit)
        async with _health_client() as client:
            return list(await asyncio.gather(*(self._describe(job, client) for job in jobs)))

    async def describe(self, job: Job) -> Service:
        async with _health_client() as client:
            return await self._describe(job, client)

    async def _describe(self, job: Job, client: httpx.AsyncClient) -> Service:
        endpoint = read_endpoint(self.workspace.run(job.id))
        state = {JobState.QUEUED: "queued", JobState.CANCELED: "stopped", JobState.FAILED: "failed",
                 JobState.SUCCEEDED: "stopped"}.get(job.state, "serving" if endpoint else "starting")  # fmt: skip
        return Service(job_id=job.id, model=job.arguments.get("model_id", "?"), engine=job.arguments.get("engine", "?"),
                       state=state, url=endpoint.url if endpoint and state == "serving" else None,
                       api_key=endpoint.api_key if endpoint and state == "serving" else None,
                       healthy=await healthy(endpoint, client) if endpoint and state == "serving" else None,
                       error=job.error if job.state is JobState.FAILED else None,
                       started_at=job.started_at, finished_at=job.finished_at)  # fmt: skip

    async def service_job(self, job_id: str, principal: Principal) -> Job:
        job = await self.jobs.get(job_id, principal)
        if job.kind != SERVE_KIND:
            raise InvalidArguments(f"service: {job_id} is a {job.kind} job, not a service; serve_list shows services")
        return job

    async def endpoint(self, job_id: str, principal: Principal) -> Endpoint:
        job = await self.service_job(job_id, principal)
        endpoint = read_endpoint(self.workspace.run(job.id))
        if job.state is not JobState.RUNNING or endpoint is None:
            raise Conflict(f"service: {job_id} is not serving (it is {job.state.value}); serve_list shows what runs")
        return endpoint

    async def running_for(self, model_id: str, principal: Principal) -> Endpoint | None:
        """A running service of `principal`'s (an admin's: anyone's) that serves this version."""
        for job in await self.jobs.list(principal, [JobState.RUNNING], kind=SERVE_KIND, limit=10_000):
            if job.arguments.get("model_id") == model_id:
                endpoint = read_endpoint(self.workspace.run(job.id))
                if endpoint is not None:
                    return endpoint
        return None


def _health_client() -> httpx.AsyncClient:
    import httpx

    return httpx.AsyncClient(timeout=HEALTH_TIMEOUT_S)


async def healthy(endpoint: Endpoint, client: httpx.AsyncClient) -> bool:
    import httpx

    try:
        return (await client.get(endpoint.url.removesuffix("/v1") + "/health")).status_code == 200
    except httpx.HTTPError:
        return False



def _gpu_count() -> int:
    from forge_mcp.hardware.probe import gpu_count

    return gpu_count()
