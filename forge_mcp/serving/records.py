"""What a running service is, as its job announces it and as serve_list shows it."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, Field

from forge_mcp.jobs.run_dir import RunDir

Engine = Literal["llama_cpp", "transformers", "vllm", "mlx"]


class Endpoint(BaseModel):
    job_id: str
    model: str = Field(description="The registered version served; also the `model` name requests use")
    engine: Engine
    url: str = Field(description="OpenAI-compatible base URL, e.g. http://127.0.0.1:PORT/v1")
    api_key: str = Field(description="Bearer key this endpoint accepts")
    pid: int
    started_at: float


class Service(BaseModel):
    job_id: str
    model: str
    engine: str
    state: Literal["starting", "serving", "stopped", "failed", "queued"]
    url: str | None = None
    healthy: bool | None = Field(None, description="Whether /health answered just now (serving services only)")
    # The caller sees only their own services (an admin: all), and a client of the service needs
    # its key: `forge-mcp chat --model forge:<name>@vN` finds the endpoint and key here.
    api_key: str | None = Field(None, description="Bearer key the endpoint accepts (serving services only)")
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None


def read_endpoint(run: RunDir) -> Endpoint | None:
    """The endpoint a serving job announced (its run's service.json), or None before it listens."""
    try:
        return Endpoint(**json.loads(run.service.read_text()))
    except (OSError, ValueError):
        return None
