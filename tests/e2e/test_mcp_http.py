"""The official MCP client against `forge-mcp serve` over Streamable HTTP, both protocol
eras; plus the HTTP hardening around it (Host/Origin, body limit, health, metrics)."""

from __future__ import annotations

import json

import httpx
import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.conftest import ALL_TOOLS

pytestmark = pytest.mark.e2e

MODES = ["auto", "legacy"]
TOOLS_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "forge_overview", "arguments": {}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


@pytest.mark.parametrize("mode", MODES)
async def test_list_call_and_read_over_http(server: ServerProcess, mode: str) -> None:
    async with Client(f"{server.url}/mcp/", mode=mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        overview = await client.call_tool("forge_overview", {})
        status = await client.call_tool("system_status", {"sample_seconds": 0.1})
        resource = await client.read_resource("forge://overview")
    assert tools["forge_overview"].annotations.read_only_hint is True
    assert tools["system_status"].input_schema["properties"]["sample_seconds"]["maximum"] == 5.0
    assert overview.structured_content["auth"] is False
    listed = {t["name"] for toolset in overview.structured_content["toolsets"] for t in toolset["tools"]}
    assert listed == ALL_TOOLS == set(tools)
    assert status.structured_content["disk_free_gib"] > 0
    assert json.loads(resource.contents[0].text)["version"] == overview.structured_content["version"]


@pytest.mark.parametrize("mode", MODES)
async def test_bad_input_over_http_names_the_field(server: ServerProcess, mode: str) -> None:
    async with Client(f"{server.url}/mcp/", mode=mode) as client:
        missing_tool = await client.call_tool("dataset_delete_everything", {})
        mistyped = await client.call_tool("system_status", {"sample_seconds": [1]})
    assert missing_tool.is_error and "unknown tool 'dataset_delete_everything'" in missing_tool.content[0].text
    assert mistyped.is_error and "'sample_seconds'" in mistyped.content[0].text
    for reply in (missing_tool, mistyped):
        assert "Traceback" not in reply.content[0].text and str(server.home) not in reply.content[0].text


def test_forged_host_is_refused_with_421(server: ServerProcess) -> None:
    for path in ("/mcp/", "/a2a", "/health", "/.well-known/agent-card.json"):
        response = httpx.post(server.url + path, json=TOOLS_CALL, headers={**MCP_HEADERS, "host": "evil.example"})
        assert response.status_code == 421, path


def test_forged_origin_is_refused_with_403(server: ServerProcess) -> None:
    for path in ("/mcp/", "/a2a"):
        response = httpx.post(
            server.url + path, json=TOOLS_CALL, headers={**MCP_HEADERS, "origin": "http://evil.example"}
        )
        assert response.status_code == 403, path


def test_oversized_body_is_refused_with_413(server: ServerProcess) -> None:
    response = httpx.post(server.url + "/mcp/", content=b"x" * (4 * 1024 * 1024 + 1), headers=MCP_HEADERS)
    assert response.status_code == 413


def test_health_reports_the_database(server: ServerProcess) -> None:
    body = httpx.get(server.url + "/health").json()
    assert body["status"] == "ok" and body["database"] == "ok"


async def test_metrics_count_requests_and_tool_calls(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        await client.call_tool("system_status", {"sample_seconds": 0.05})
        await client.call_tool("system_status", {"sample_seconds": "bad"})
    text = httpx.get(server.url + "/metrics").text
    assert 'forge_tool_calls_total{outcome="ok",surface="mcp",tool="system_status"}' in text
    assert 'forge_tool_calls_total{outcome="invalid_arguments",surface="mcp",tool="system_status"}' in text
    assert 'forge_http_requests_total{method="POST",route="mcp",status="200"}' in text
    assert "forge_http_request_duration_seconds_bucket" in text
    assert "forge_tool_call_duration_seconds_count" in text


def test_server_stops_cleanly_on_sigterm(tmp_path) -> None:  # noqa: ANN001
    live = ServerProcess(tmp_path / "ws")
    live.start()
    assert httpx.get(live.url + "/health").status_code == 200
    assert live.stop() == 0
    assert "Application shutdown complete" in live.log_tail()
