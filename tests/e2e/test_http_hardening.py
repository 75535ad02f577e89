"""HTTP hardening against a live `forge-mcp serve`: exact Host/Origin on every route, the
JSON nesting limit on every surface, /a2a/ and the agent card's caching headers, and
half-open connection floods (bounded, loopback only)."""

from __future__ import annotations

import json
import select
import socket
import sys
import time
from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from forge_mcp.protocols.json_depth import MAX_JSON_DEPTH
from forge_mcp.server_process import ServerProcess
from tests.conftest import AuthServer, forge_cli, mcp_client

pytestmark = pytest.mark.e2e

MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
A2A_HEADERS = {"content-type": "application/json", "a2a-version": "1.0"}
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}  # fmt: skip
LIST_TASKS = {"jsonrpc": "2.0", "id": 2, "method": "ListTasks", "params": {}}
TOO_DEEP = "the JSON is nested more than 64 levels deep"


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def nested_value(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def route_requests(url: str) -> list[tuple[str, str, dict[str, str], bytes | None]]:
    """(method, path, headers, body) for a request each route answers with 200."""
    return [
        ("GET", "/health", {}, None),
        ("GET", "/metrics", {}, None),
        ("GET", "/.well-known/agent-card.json", {}, None),
        ("POST", "/mcp/", MCP_HEADERS, json.dumps(INITIALIZE).encode()),
        ("POST", "/a2a", A2A_HEADERS, json.dumps(LIST_TASKS).encode()),
        ("POST", "/a2a/", A2A_HEADERS, json.dumps(LIST_TASKS).encode()),
        ("GET", "/a2a/rest/tasks", {"a2a-version": "1.0"}, None),
    ]




def test_host_and_origin_must_match_exactly_on_every_route(server: ServerProcess) -> None:
    port = urlsplit(server.url).port
    evil_hosts = [f"localhost:{port}.evil.example", f"127.0.0.1:{port}.evil.example", f"localhost.evil.example:{port}",
                  f"[::1]:{port}.evil.example", f"localhost:{port}@evil.example", "evil.example"]  # fmt: skip
    evil_origins = [f"http://localhost:{port}.evil.example", f"http://127.0.0.1:{port}.evil.example",
                    f"http://localhost.evil.example:{port}", "null"]  # fmt: skip
    good = [{}, {"host": f"localhost:{port}"}, {"host": f"LocalHost:{port}"}, {"origin": f"http://localhost:{port}"},
            {"origin": f"http://127.0.0.1:{port}"}]  # fmt: skip
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for method, path, headers, body in route_requests(server.url):
            for host in evil_hosts:
                response = http.request(method, path, headers={**headers, "host": host}, content=body)
                assert response.status_code == 421, (path, host, response.status_code)
            for origin in evil_origins:
                response = http.request(method, path, headers={**headers, "origin": origin}, content=body)
                assert response.status_code == 403, (path, origin, response.status_code)
            for extra in good:
                response = http.request(method, path, headers={**headers, **extra}, content=body)
                assert response.status_code == 200, (path, extra, response.status_code, response.text[:200])


def test_a2a_json_rpc_answers_with_and_without_the_trailing_slash(server: ServerProcess) -> None:
    for path in ("/a2a", "/a2a/"):
        response = httpx.post(server.url + path, json=LIST_TASKS, headers={"a2a-version": "1.0"})
        assert response.status_code == 200 and response.json()["id"] == 2 and "result" in response.json(), path


def test_agent_card_can_be_cached_and_revalidated(server: ServerProcess) -> None:
    url = server.url + "/.well-known/agent-card.json"
    card = httpx.get(url)
    assert card.status_code == 200
    assert card.headers["cache-control"] == "public, max-age=300"
    assert card.headers["etag"] and card.headers["last-modified"].endswith(" GMT")
    for condition in ({"if-none-match": card.headers["etag"]}, {"if-modified-since": card.headers["last-modified"]}):
        again = httpx.get(url, headers=condition)
        assert again.status_code == 304 and again.content == b"", condition
        assert again.headers["etag"] == card.headers["etag"] and again.headers["last-modified"]
    older = httpx.get(url, headers={"if-modified-since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert older.status_code == 200 and older.json()["name"]


def mcp_session(url: str) -> tuple[httpx.Client, dict[str, str]]:
    client = httpx.Client(timeout=30)
    started = client.post(url + "/mcp/", json=INITIALIZE, headers=MCP_HEADERS)
    headers = {**MCP_HEADERS, "mcp-session-id": started.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    client.post(url + "/mcp/", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return client, headers


def deep_tool_call(depth: int, request_id: int = 7) -> bytes:
    arguments = '{"sample_seconds": ' + nested(depth) + "}"
    params = '{"name": "system_status", "arguments": ' + arguments + "}"
    return ('{"jsonrpc": "2.0", "id": ' + str(request_id) + ', "method": "tools/call", "params": ' + params + "}").encode()


def assert_clean_rpc_error(response: httpx.Response, status: int, request_id: int) -> None:
    assert response.status_code == status, response.text[:300]
    body = response.json()
    assert body["id"] == request_id and body["error"]["code"] == -32600
    assert TOO_DEEP in body["error"]["message"]


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH, 300, 1000, 20_000])
def test_deep_json_gets_an_invalid_request_error_on_every_http_surface(server: ServerProcess, depth: int) -> None:
    client, headers = mcp_session(server.url)
    with closing(client):
        legacy = client.post(server.url + "/mcp/", content=deep_tool_call(depth), headers=headers)
    modern = httpx.post(server.url + "/mcp/", content=deep_tool_call(depth),
                        headers={**MCP_HEADERS, "mcp-protocol-version": "2026-07-28"})  # fmt: skip
    message = '{"message": {"role": "ROLE_USER", "messageId": "m1", "parts": [{"data": ' + nested(depth) + "}]}}"
    rpc = '{"jsonrpc": "2.0", "id": 9, "method": "SendMessage", "params": ' + message + "}"
    a2a = [httpx.post(server.url + path, content=rpc, headers=A2A_HEADERS) for path in ("/a2a", "/a2a/")]
    rest = httpx.post(server.url + "/a2a/rest/message:send", content=message, headers=A2A_HEADERS)
    replies = [legacy, modern, *a2a, rest]
    if depth + 4 <= MAX_JSON_DEPTH:
        return
    assert_clean_rpc_error(legacy, 400, 7)
    assert_clean_rpc_error(modern, 400, 7)
    for reply in a2a:
        assert_clean_rpc_error(reply, 200, 9)
    assert rest.status_code == 400 and rest.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert TOO_DEEP in rest.json()["error"]["message"]
    for reply in replies:
        assert "recursion" not in reply.text.lower() and "Traceback" not in reply.text
    assert "RecursionError" not in server.log_tail(200_000)


def test_depth_at_the_limit_still_reaches_the_tool(server: ServerProcess) -> None:
    client, headers = mcp_session(server.url)
    with closing(client):
        reply = client.post(server.url + "/mcp/", content=deep_tool_call(MAX_JSON_DEPTH - 4), headers=headers)
    assert reply.status_code == 200 and "'sample_seconds'" in reply.text  # the tool's own argument error


@pytest.mark.parametrize("transport", ["http", "stdio"])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_official_client_gets_the_error_for_deep_arguments(
    server: ServerProcess, tmp_path: Path, transport: str, mode: str
) -> None:
    async with mcp_client(transport, server, tmp_path, mode) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("system_status", {"sample_seconds": nested_value(100)})
        ok = await client.call_tool("system_status", {"sample_seconds": 0.05})
    assert caught.value.error.code == -32600 and TOO_DEEP in caught.value.error.message
    assert not ok.is_error


def test_deep_json_with_auth_on_is_a_clean_error_not_a_500(auth_server: AuthServer) -> None:
    key = {"authorization": f"Bearer {auth_server.keys['admin']}"}
    response = httpx.post(auth_server.url + "/mcp/", content=deep_tool_call(1000), headers={**MCP_HEADERS, **key})
    assert_clean_rpc_error(response, 400, 7)
    anonymous = httpx.post(auth_server.url + "/mcp/", content=deep_tool_call(1000), headers=MCP_HEADERS)
    assert anonymous.status_code == 401
    log = auth_server.log_path.read_text(errors="replace")
    assert "RecursionError" not in log and "Exception in ASGI application" not in log


def test_lines_too_deep_for_any_client_library_get_the_error_over_stdio(tmp_path: Path) -> None:
    """Depths the official client cannot even serialize, written raw."""
    import subprocess

    process = subprocess.Popen(
        [sys.executable, "-m", "forge_mcp", "--home", str(tmp_path / "ws"), "stdio"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    lines = [json.dumps(INITIALIZE), json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
             deep_tool_call(1000, 10).decode(), deep_tool_call(50_000, 11).decode(),
             json.dumps({"jsonrpc": "2.0", "id": 12, "method": "tools/list"})]  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(("\n".join(lines) + "\n").encode())
    process.stdin.flush()
    replies: dict[int, dict] = {}
    deadline = time.monotonic() + 120
    while not {10, 11, 12} <= replies.keys() and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.1, deadline - time.monotonic()))
        line = process.stdout.readline() if ready else b""
        if line:
            message = json.loads(line)
            replies[message.get("id")] = message
    _, err = process.communicate(timeout=60)  # closes stdin: the server exits
    for rid in (10, 11):
        assert replies[rid]["error"]["code"] == -32600 and TOO_DEEP in replies[rid]["error"]["message"]
    assert replies[12]["result"]["tools"]
    assert b"Traceback" not in err and b"recursion" not in err.lower()


def test_cli_args_too_deep_are_refused_cleanly(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "call", "system_status", "--args", '{"sample_seconds": ' + nested(5000) + "}")
    assert result.returncode == 2
    assert TOO_DEEP in result.stderr and "Traceback" not in result.stderr


# --- slow and half-open connections ---------------------------------------------------

HEADER_TIMEOUT_S = 1.0
CAP = 100
HALF_OPEN = 300


def open_half(address: tuple[str, int], count: int, head: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=5)
        if head:
            sock.sendall(head)
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket, deadline: float) -> tuple[bool, bytes]:
    """(whether the server closed it before `deadline`, what it sent)."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return False, received
        except ConnectionResetError:
            return True, received
        if not chunk:
            return True, received
        received += chunk
    return False, received


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    home = tmp_path_factory.mktemp("ws-strict") / "forge-workspace"
    env = {"FORGE_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S), "FORGE_BODY_TIMEOUT_S": str(HEADER_TIMEOUT_S),
           "FORGE_MAX_CONNECTIONS": str(CAP)}  # fmt: skip
    with ServerProcess(home, env=env) as live:
        yield live


def test_half_open_floods_neither_starve_health_nor_linger(strict_server: ServerProcess) -> None:
    parts = urlsplit(strict_server.url)
    address = (parts.hostname or "127.0.0.1", parts.port or 0)
    head = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{address[1]}\r\nX-Slow: ".encode()
    started = time.monotonic()
    half = open_half(address, HALF_OPEN, head)  # 3x the cap, heads never finished
    silent = open_half(address, 20, b"")  # connected, nothing sent
    body = f"POST /a2a HTTP/1.1\r\nHost: 127.0.0.1:{address[1]}\r\nContent-Length: 1000\r\n\r\n{{".encode()
    slow_body = open_half(address, 5, body)  # head complete, body never is
    try:
        health = httpx.get(strict_server.url + "/health", timeout=5)
        assert health.status_code == 200 and time.monotonic() - started < 15
        deadline = time.monotonic() + HEADER_TIMEOUT_S + 5
        outcomes = [closed_by_server(sock, deadline) for sock in half + silent + slow_body]
        assert all(closed for closed, _ in outcomes), sum(not closed for closed, _ in outcomes)
        # A head cut off by the deadline gets 408 (those pushed out by the cap just close).
        assert any(sent.startswith(b"HTTP/1.1 408") for _, sent in outcomes[:HALF_OPEN])
        assert all(sent == b"" for _, sent in outcomes[HALF_OPEN : HALF_OPEN + 20])
        assert httpx.get(strict_server.url + "/health", timeout=5).status_code == 200
    finally:
        for sock in half + silent + slow_body:
            sock.close()
    log = strict_server.log_tail(1_000_000)
    assert len(log) < 20_000 and "Traceback" not in log and "Too many open files" not in log


def test_a_request_sent_in_pieces_within_the_deadline_is_served(strict_server: ServerProcess) -> None:
    parts = urlsplit(strict_server.url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=5) as sock:
        for piece in (b"GET /health HTTP/1.1\r\n", f"Host: 127.0.0.1:{parts.port}\r\n".encode(), b"\r\n"):
            sock.sendall(piece)
            time.sleep(HEADER_TIMEOUT_S / 5)
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 200")
