"""MCP conformance with the official client, both protocol eras, over HTTP and stdio:
logging (logging/setLevel up to 2025-11-25, the per-request level from 2026-07-28 on)
carries jobs' events at the level the client chose; an unknown prompt is -32602, quietly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from forge_mcp.server_process import ServerProcess
from tests.conftest import mcp_client

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")]

QUICK = {"seconds_per_test": 0.1, "backend": "numpy", "devices": ["cpu"]}
TRANSPORTS = ["http", "stdio"]


async def run_a_job(client: Client) -> str:
    started = await client.call_tool("system_benchmark", QUICK)
    job_id = started.structured_content["job_id"]
    waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 60})
    assert waited.structured_content["job"]["state"] == "SUCCEEDED"
    return job_id


class Logs:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def __call__(self, params: Any) -> None:
        self.messages.append(params)

    def for_job(self, job_id: str) -> list[tuple[str, str]]:
        return [(m.level, m.data["state"]) for m in self.messages if isinstance(m.data, dict) and m.data.get("job_id") == job_id]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_unknown_prompt_is_invalid_params_without_a_traceback(
    server: ServerProcess, tmp_path: Path, transport: str, mode: str
) -> None:
    async with mcp_client(transport, server, tmp_path, mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.get_prompt("does_not_exist")
        listed = [prompt.name for prompt in (await client.list_prompts()).prompts]
    assert "operator-system" in listed  # every workspace has it (tests/prompts test the prompts themselves)
    assert caught.value.error.code == -32602
    assert "unknown prompt 'does_not_exist'; the prompts are: " in caught.value.error.message
    if transport == "http":
        assert "Traceback" not in server.log_tail(200_000)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_set_level_declares_logging_and_job_events_follow_the_level(
    server: ServerProcess, tmp_path: Path, transport: str
) -> None:
    logs = Logs()
    async with mcp_client(transport, server, tmp_path, "legacy", logging_callback=logs) as client:
        assert client.session.initialize_result.capabilities.logging is not None
        quiet = await run_a_job(client)  # no level chosen yet: nothing is sent
        await client.set_logging_level("info")
        told = await run_a_job(client)
        await client.set_logging_level("error")
        filtered = await run_a_job(client)
    assert logs.for_job(quiet) == []
    events = logs.for_job(told)
    assert ("info", "QUEUED") in events and ("info", "RUNNING") in events and ("notice", "SUCCEEDED") in events
    assert logs.for_job(filtered) == []  # nothing at error level or above happened
    started = next(m for m in logs.messages if m.data.get("job_id") == told and m.data["state"] == "RUNNING")
    assert started.logger == "forge-mcp.jobs" and told in started.data["message"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_from_2026_a_request_opts_in_and_its_job_events_ride_it(
    server: ServerProcess, tmp_path: Path, transport: str
) -> None:
    logs = Logs()
    async with mcp_client(transport, server, tmp_path, "auto", logging_callback=logs, log_level="info") as client:
        told = await run_a_job(client)
    assert ("notice", "SUCCEEDED") in logs.for_job(told)
    silent = Logs()
    async with mcp_client(transport, server, tmp_path, "auto", logging_callback=silent) as client:
        await run_a_job(client)
    assert silent.messages == []
