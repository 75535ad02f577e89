"""Authentication over HTTP for both protocols: 401 without a valid key, 403 without the
scope, success with it; stdio is unaffected; keys never reach logs or the database."""

from __future__ import annotations

import sys

import httpx
import httpx2
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import AuthServer, forge_cli

pytestmark = pytest.mark.e2e

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "forge_overview", "arguments": {}}}
A2A_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "SendMessage",
    "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {"tool": "forge_overview"}}]}},
}
A2A_HEADERS = {"A2A-Version": "1.0", "content-type": "application/json"}


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.mark.parametrize("path", ["/mcp/", "/a2a", "/a2a/rest/tasks", "/metrics"])
@pytest.mark.parametrize("who", ["nobody", "unknown", "revoked"])
def test_missing_unknown_or_revoked_key_gets_401(auth_server: AuthServer, path: str, who: str) -> None:
    headers = {
        "nobody": {},
        "unknown": bearer("forge_" + "A" * 43),
        "revoked": bearer(auth_server.keys["revoked"]),
    }[who]
    body = MCP_CALL if path.startswith("/mcp") else A2A_CALL
    headers = {**(MCP_HEADERS if path.startswith("/mcp") else A2A_HEADERS), **headers}
    if path in ("/a2a/rest/tasks", "/metrics"):
        response = httpx.get(auth_server.url + path, headers=headers)
    else:
        response = httpx.post(auth_server.url + path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_key_without_the_scope_gets_403_on_both_protocols(auth_server: AuthServer) -> None:
    key = auth_server.keys["reader"]  # has 'read' only; starting a job needs 'train'
    start = {"tool": "system_benchmark", "arguments": {"seconds_per_test": 0.1}}
    mcp_call = {**MCP_CALL, "params": {"name": start["tool"], "arguments": start["arguments"]}}
    message = {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": start}]}
    a2a_call = {**A2A_CALL, "params": {"message": message}}
    mcp = httpx.post(auth_server.url + "/mcp/", json=mcp_call, headers={**MCP_HEADERS, **bearer(key)})
    a2a = httpx.post(auth_server.url + "/a2a", json=a2a_call, headers={**A2A_HEADERS, **bearer(key)})
    rest = httpx.post(
        auth_server.url + "/a2a/rest/message:send", json={"message": message}, headers={**A2A_HEADERS, **bearer(key)}
    )
    for response in (mcp, a2a, rest):
        assert response.status_code == 403
        assert response.json()["error"] == "insufficient_scope"
        assert "'train' scope" in response.json()["error_description"]


def test_public_endpoints_stay_open(auth_server: AuthServer) -> None:
    assert httpx.get(auth_server.url + "/health").status_code == 200
    card = httpx.get(auth_server.url + "/.well-known/agent-card.json").json()
    [scheme] = card["securitySchemes"].values()
    assert scheme["httpAuthSecurityScheme"]["scheme"] == "Bearer"
    assert card["securityRequirements"]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("who", ["reader", "admin"])
async def test_mcp_client_with_a_key_works(auth_server: AuthServer, mode: str, who: str) -> None:
    async with httpx2.AsyncClient(headers=bearer(auth_server.keys[who])) as http:
        async with Client(streamable_http_client(f"{auth_server.url}/mcp/", http_client=http), mode=mode) as client:
            result = await client.call_tool("forge_overview", {})
            resource = await client.read_resource("forge://overview")
    assert not result.is_error and result.structured_content["auth"] is True
    assert '"auth": true' in resource.contents[0].text


async def test_a2a_client_with_a_key_works(auth_server: AuthServer) -> None:
    http = httpx.AsyncClient(headers=bearer(auth_server.keys["reader"]))
    client = await create_client(auth_server.url, client_config=ClientConfig(streaming=True, httpx_client=http))
    try:
        message = new_message([new_data_part({"tool": "system_status", "arguments": {}})], role=Role.ROLE_USER)
        events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    finally:
        await client.close()
        await http.aclose()
    final = [e.status_update.status.state for e in events if e.HasField("status_update")][-1]
    assert final == TaskState.TASK_STATE_COMPLETED
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    assert "cpu_percent" in get_data_parts(artifact.parts)[0]


def test_metrics_need_a_key_when_auth_is_on(auth_server: AuthServer) -> None:
    response = httpx.get(auth_server.url + "/metrics", headers=bearer(auth_server.keys["reader"]))
    assert response.status_code == 200 and "forge_http_requests_total" in response.text


async def test_stdio_is_unaffected_by_auth(auth_server: AuthServer) -> None:
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "forge_mcp", "--home", str(auth_server.home), "stdio"]
    )
    async with Client(params) as client:
        result = await client.call_tool("forge_overview", {})
    assert not result.is_error


def test_keys_never_reach_the_log_or_the_database(auth_server: AuthServer) -> None:
    # Drive traffic with every key first, good and bad, so there is something to leak.
    for key in auth_server.keys.values():
        httpx.post(auth_server.url + "/mcp/", json=MCP_CALL, headers={**MCP_HEADERS, **bearer(key)})
        httpx.post(auth_server.url + "/a2a", json=A2A_CALL, headers={**A2A_HEADERS, **bearer(key)})
    log = auth_server.log_path.read_text(errors="replace")
    stored = b"".join(p.read_bytes() for p in auth_server.home.glob("forge.db*"))
    for key in auth_server.keys.values():
        assert key not in log
        assert key.encode() not in stored


def test_keys_list_shows_prefixes_not_keys(auth_server: AuthServer) -> None:
    listed = forge_cli(auth_server.home, "keys", "list")
    assert listed.returncode == 0
    assert "reader" in listed.stdout and "revoked" in listed.stdout
    for key in auth_server.keys.values():
        assert key not in listed.stdout


async def test_rate_limit_answers_429_per_api_key_readably(tmp_path) -> None:  # noqa: ANN001
    from forge_mcp.server_process import ServerProcess

    home = tmp_path / "ws"
    keys = {n: forge_cli(home, "keys", "create", "--name", n, "--scopes", "read").stdout.strip() for n in ("a", "b")}
    with ServerProcess(home, args=("--auth", "on"), env={"FORGE_RATE_LIMIT_PER_MINUTE": "3"}) as live:
        rest = {"A2A-Version": "1.0", **bearer(keys["a"])}
        codes = [httpx.get(live.url + "/a2a/rest/tasks", headers=rest).status_code for _ in range(5)]
        limited = httpx.get(live.url + "/a2a/rest/tasks", headers=rest)
        other_key = httpx.get(live.url + "/a2a/rest/tasks", headers={"A2A-Version": "1.0", **bearer(keys["b"])})
        over_mcp = httpx.post(live.url + "/mcp/", json=MCP_CALL, headers={**MCP_HEADERS, **bearer(keys["a"])})
        async with httpx2.AsyncClient(headers=bearer(keys["a"])) as http:
            with pytest.raises(BaseExceptionGroup) as raised:
                async with Client(streamable_http_client(f"{live.url}/mcp/", http_client=http)) as client:
                    await client.call_tool("forge_overview", {})
        health = httpx.get(live.url + "/health").status_code
    assert codes[:3] == [200, 200, 200]
    assert codes[3:] == [429, 429]
    assert int(limited.headers["retry-after"]) >= 1
    assert other_key.status_code == 200  # each key has its own bucket
    assert over_mcp.status_code == 429 and over_mcp.json()["error"]["data"]["retry_after_s"] >= 1
    # The MCP client shows the server's message (a non-JSON-RPC body would read 'Server returned an error response').
    assert raised.group_contains(MCPError, match="rate limit: this API key made more than 3 requests", depth=2)
    assert health == 200  # health is not rate limited


async def test_local_operator_is_not_rate_limited_without_auth(tmp_path) -> None:  # noqa: ANN001
    """With auth off every loopback caller is the one local operator: concurrent local
    clients must not use up a shared bucket and fail each other."""
    import asyncio

    from forge_mcp.server_process import ServerProcess

    async def session(url: str, mode: str) -> list[bool]:
        async with Client(f"{url}/mcp/", mode=mode) as client:
            return [(await client.call_tool("job_list", {})).is_error for _ in range(3)]

    with ServerProcess(tmp_path / "ws", env={"FORGE_RATE_LIMIT_PER_MINUTE": "3"}) as live:
        codes = [httpx.get(live.url + "/a2a/rest/tasks", headers={"A2A-Version": "1.0"}).status_code for _ in range(8)]
        failed = await asyncio.gather(*(session(live.url, mode) for mode in ("auto", "legacy") * 3))
    assert codes == [200] * 8
    assert failed == [[False] * 3] * 6  # 6 sessions, 18 calls and their set-up: far past 3 requests
