"""A serving job, inside its worker: load the engine, listen on a loopback port, tell the
server where (the run's service.json, with the endpoint's own API key, mode 0600), and
serve until the job is stopped. If the engine's HTTP server or the external process dies,
the job fails, so the service is FAILED rather than silently gone.

vLLM cannot share this environment (it pins its own torch and CUDA): it runs as an
external command, configured by the operator, that this job starts, health-checks and
stops; clients talk to its own OpenAI-compatible API.

Reads top to bottom: port, engine, listen, announce, serve, stop.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from forge_mcp.errors import ForgeError
from forge_mcp.jobs.context import JobCanceled, JobContext
from forge_mcp.serving.records import Endpoint
from forge_mcp.tcp_listener import tcp_listener

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0  # an in-process engine's HTTP server must be up this soon after loading
STOP_TIMEOUT_S = 10.0
POLL_S = 0.5  # how often the job looks at its server while serving


class ServeResult(BaseModel):
    model: str
    engine: str
    url: str
    served_s: float


def listen_socket(port: int) -> socket.socket:
    """The endpoint's socket on loopback (port 0: any free one), made as the server's own is."""
    try:
        return tcp_listener(LOOPBACK, port)
    except OSError as exc:
        raise ForgeError(f"port: {port} on {LOOPBACK} is not free ({exc.strerror}); leave port out to get a free one") from None


def serve(job: JobContext, model_id: str, engine: str, model_path: Path, adapter_path: Path | None, gguf_file: Path | None,
          port: int, context_length: int, external_command: list[str] | None, startup_timeout_s: float,
          threads: int | None = None) -> ServeResult:  # fmt: skip
    api_key = secrets.token_urlsafe(24)
    # -- port -------------------------------------------------------------------------
    sock = listen_socket(port)
    port = sock.getsockname()[1]
    endpoint = Endpoint(job_id=job.job_id, model=model_id, engine=engine, url=f"http://{LOOPBACK}:{port}/v1",
                        api_key=api_key, pid=os.getpid(), started_at=time.time())  # fmt: skip
    if engine == "vllm":
        sock.close()  # the external server binds it itself
        return _serve_external(job, endpoint, model_path, adapter_path, external_command or [], startup_timeout_s)
    # -- engine -----------------------------------------------------------------------
    job.progress(0, 2, f"loading {model_id} into {engine}")
    chat_engine = _load(engine, model_id, model_path, adapter_path, gguf_file, context_length, threads)
    # -- listen -----------------------------------------------------------------------
    import uvicorn

    from forge_mcp.serving.openai_app import openai_app

    server = uvicorn.Server(uvicorn.Config(openai_app(chat_engine, model_id, api_key), log_level="warning", lifespan="off",
                                           access_log=False, timeout_graceful_shutdown=int(STOP_TIMEOUT_S)))  # fmt: skip
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="openai-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ForgeError("the HTTP server did not start; job_logs has why")
        thread.join(0.05)
    # -- announce and serve -----------------------------------------------------------
    _announce(job, endpoint)
    try:
        while thread.is_alive():
            thread.join(POLL_S)  # SIGTERM (serve_stop) raises JobCanceled here
        raise ForgeError("the HTTP server stopped on its own; job_logs has why")
    except JobCanceled:
        # -- stop ---------------------------------------------------------------------
        server.should_exit = True
        thread.join(STOP_TIMEOUT_S)
        raise


def _load(engine: str, model_id: str, model_path: Path, adapter_path: Path | None, gguf_file: Path | None, context: int,
          threads: int | None) -> Any:  # fmt: skip
    from forge_mcp.backends import serve_engines

    if engine == "llama_cpp":
        assert gguf_file is not None  # the tool resolved a GGUF export for this engine
        return serve_engines.LlamaCppEngine(gguf_file, model_id, context, threads)
    if threads is not None and engine == "transformers":
        import torch

        torch.set_num_threads(threads)
    if engine == "mlx":
        return serve_engines.MlxEngine(model_path, adapter_path, model_id)
    return serve_engines.TransformersEngine(model_path, adapter_path, model_id)


def _announce(job: JobContext, endpoint: Endpoint) -> None:
    """service.json appears whole (written aside, then renamed) and only its owner reads it."""
    target = job.run.service
    tmp = target.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(endpoint.model_dump_json(indent=2))
    tmp.replace(target)
    job.progress(1, 1, f"serving {endpoint.model} at {endpoint.url}")
    job.log(f"[serve] {endpoint.engine} serving {endpoint.model} at {endpoint.url}")


def _serve_external(job: JobContext, endpoint: Endpoint, model_path: Path, adapter_path: Path | None,
                    command: list[str], startup_timeout_s: float) -> ServeResult:  # fmt: skip
    import httpx

    port = endpoint.url.rsplit(":", 1)[1].split("/")[0]
    arguments = ["--model", str(model_path), "--host", LOOPBACK, "--port", port, "--api-key", endpoint.api_key]
    if adapter_path is not None:  # vLLM applies the LoRA per request: the adapter is served under the version's id
        arguments += ["--served-model-name", f"{endpoint.model}-base", "--enable-lora", "--lora-modules",
                      f"{endpoint.model}={adapter_path}"]  # fmt: skip
    else:
        arguments += ["--served-model-name", endpoint.model]
    job.progress(0, 2, f"starting the external server: {Path(command[0]).name}")
    log = job.run.engine_log.open("ab")
    # Same process group as this worker: stopping or killing the job stops the engine too.
    process = subprocess.Popen([*command, *arguments], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started = time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                raise ForgeError(f"the external server exited with code {process.returncode} while starting; "
                                 f"{job.run.shown(job.run.engine_log)} has its output")  # fmt: skip
            try:
                if httpx.get(endpoint.url.removesuffix("/v1") + "/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > startup_timeout_s:
                raise ForgeError(f"the external server did not answer /health within {startup_timeout_s:.0f} s; "
                                 f"{job.run.shown(job.run.engine_log)} has its output")  # fmt: skip
            job.check_canceled()
            time.sleep(POLL_S)
        _announce(job, endpoint.model_copy(update={"pid": process.pid}))
        while process.poll() is None:
            try:
                process.wait(POLL_S)
            except subprocess.TimeoutExpired:
                continue
        raise ForgeError(f"the external server exited with code {process.returncode}; {job.run.shown(job.run.engine_log)} has why")
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
        log.close()

