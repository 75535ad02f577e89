"""Settings: packaged defaults (configs/server/default.yaml) < FORGE_CONFIG file <
FORGE_* environment < explicit overrides (CLI flags)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from forge_mcp.errors import ConfigError
from forge_mcp.jobs import constants as jobs
from forge_mcp.package_data import config_file
from forge_mcp.protocols import http_limits as limits

AuthMode = Literal["auto", "on", "off"]
# What the operator sees by default: the lifecycle from data to a served model, not the whole list.
OPERATOR_TOOLSETS = ("core", "jobs", "datasets", "training", "models", "evaluation", "serving", "rag")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORGE_", extra="forbid", validate_default=True)

    home: Path = Field(Path("./forge-workspace"), description="workspace folder")
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    auth: AuthMode = "auto"
    public_url: str | None = None
    # Lists read from the environment are comma-separated (import_roots: os.pathsep, like PATH).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    push_allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    import_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)
    toolsets: Annotated[list[str] | None, NoDecode] = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    rate_limit_per_minute: int = Field(600, ge=0)
    # Slow and half-open connections (forge_mcp/protocols/http_limits.py).
    header_timeout_s: float = Field(limits.HEADER_TIMEOUT_S, gt=0, description="time a client has to send a request's head")
    body_timeout_s: float = Field(limits.BODY_TIMEOUT_S, gt=0, description="time a client has to send a request's body")
    max_connections: int = Field(limits.MAX_CONNECTIONS, ge=limits.MIN_CONNECTIONS, description="HTTP connections held at once")
    # Jobs: admission and recovery (forge_mcp/jobs/constants.py has the rest).
    gpu_slots: int | None = Field(None, ge=0, description="GPU job slots; null = the number of GPUs detected")
    cpu_job_slots: int = Field(jobs.CPU_JOB_SLOTS, ge=1)
    service_slots: int = Field(jobs.SERVICE_SLOTS, ge=0, description="model servers that may run at once, besides CPU jobs")
    # Serving with vLLM: the command that starts its OpenAI server from vLLM's own environment,
    # e.g. "/opt/vllm/bin/python -m vllm.entrypoints.openai.api_server" (split like a shell would,
    # never run through one). serve_start adds --model, --host, --port, --api-key and LoRA flags.
    vllm_command: Annotated[list[str] | None, NoDecode] = None
    serve_startup_timeout_s: float = Field(600.0, gt=0, description="how long an external engine may take to answer /health")
    job_memory_gb: float | None = Field(None, gt=0, description="memory jobs may declare in total; null = 90% of RAM")
    max_queued_per_principal: int = Field(jobs.MAX_QUEUED_PER_PRINCIPAL, ge=1)
    job_max_attempts: int = Field(jobs.MAX_ATTEMPTS, ge=1, le=10)
    job_heartbeat_s: float = Field(jobs.HEARTBEAT_S, gt=0)
    job_lease_s: float = Field(jobs.LEASE_S, gt=0)
    job_cancel_grace_s: float = Field(jobs.CANCEL_GRACE_S, ge=0)
    # Workers started before their job with torch and the HF stack imported (forge_mcp/jobs/warm_worker.py):
    # a training, evaluation or export job on this machine takes one and skips those seconds of imports.
    warm_workers: int = Field(jobs.WARM_WORKERS, ge=0, le=8, description="warm job workers kept ready; 0 = off")
    warm_preload: Literal["training", "none"] = Field(
        jobs.WARM_PRELOAD, description="what a warm worker imports ahead: training (torch, transformers, peft, trl) or none"
    )
    # The engine's test workloads (forge_mcp/jobs/testing_kinds.py) and the test_job_start tool.
    # Set it in the environment (FORGE_TEST_JOB_KINDS=1): workers read it from theirs.
    test_job_kinds: bool = Field(False, description="offer the test-only job kinds; never on a real server")
    # A2A tasks: every call leaves a task row (its artifact included) and a ledger row.
    a2a_task_retention_hours: float = Field(24.0, gt=0, description="ended A2A tasks are deleted this long after their last update")
    a2a_max_tasks: int = Field(10_000, ge=1, description="A2A tasks kept at most; the oldest ended ones go first")
    a2a_prune_interval_s: float = Field(60.0, gt=0, description="how often ended A2A tasks are pruned")
    # Monitoring (forge_mcp/monitoring): this machine and each probed compute target, sampled into
    # the store for system_history and the /metrics gauges by the server that supervises the jobs.
    monitor_interval_s: float = Field(30.0, ge=1.0, le=3600.0, description="how often the hosts are sampled, in seconds")
    monitor_retention_hours: float = Field(24.0, ge=1.0, le=24.0 * 90, description="samples older than this are deleted")
    # The chat operator (agents/operator.py): free-text A2A messages and `forge-mcp chat`.
    # Any OpenAI-compatible endpoint through litellm, or forge:<name>@vN for a model this server serves.
    operator_model: str | None = Field(None, description="e.g. openai/gpt-4o-mini, ollama/llama3, forge:support-bot@v2")
    operator_api_base: str | None = Field(None, description="the endpoint's base URL, e.g. http://127.0.0.1:8000/v1")
    # The key is never stored: only the name of the environment variable that holds it.
    operator_api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                             description="name of the environment variable holding the endpoint's key")  # fmt: skip
    operator_toolsets: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(OPERATOR_TOOLSETS), description="the toolsets the operator may call"
    )

    @field_validator("toolsets", "operator_toolsets", "allowed_hosts", "allowed_origins", "push_allowed_hosts", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("vllm_command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            import shlex

            return shlex.split(value) or None
        return value

    @field_validator("import_roots", mode="before")
    @classmethod
    def _split_path_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in value.split(os.pathsep) if part]
        return value

    @property
    def auth_enabled(self) -> bool:
        if self.auth == "auto":
            return not is_loopback(self.host)
        return self.auth == "on"

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        layers: list[dict[str, Any]] = [_read_yaml_layer(config_file("server", "default.yaml").read_text(), "default")]
        user_file = os.environ.get("FORGE_CONFIG")
        if user_file:
            path = Path(user_file)
            if not path.is_file():
                raise ConfigError(f"FORGE_CONFIG points at a file that does not exist: {path.name!r}")
            layers.append(_read_yaml_layer(path.read_text(), path.name))
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        return (init_settings, env_settings, InitSettingsSource(settings_cls, merged))


def _read_yaml_layer(text: str, label: str) -> dict[str, Any]:
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {label!r} must be a mapping of setting names to values")
    data.pop("FORGE_CONFIG", None)
    return {key: value for key, value in data.items() if value is not None}


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation failures into one ConfigError that lists every problem."""
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid settings: {problems}") from None
