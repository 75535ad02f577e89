"""The official MCP client against `forge-mcp stdio` in a subprocess, in both protocol eras."""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.e2e

MODES = ["auto", "legacy"]


def stdio_params(home: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "forge_mcp", "--home", str(home), "--log-level", "DEBUG", "stdio"]
    )


@pytest.mark.parametrize("mode", MODES)
async def test_list_call_and_read_over_stdio(tmp_path: Path, mode: str) -> None:
    async with Client(stdio_params(tmp_path / "ws"), mode=mode) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        overview = await client.call_tool("forge_overview", {})
        status = await client.call_tool("system_status", {"sample_seconds": 0.1})
        resource = await client.read_resource("forge://overview")
    assert {"forge_overview", "system_status"} <= tools
    assert not overview.is_error and overview.structured_content["name"] == "forge-mcp"
    assert overview.structured_content["hardware"]["cpu"]["logical_cores"] >= 1
    assert overview.structured_content["workspace"]["runs"] == 0
    assert not status.is_error and 0 <= status.structured_content["memory_percent"] <= 100
    assert json.loads(resource.contents[0].text)["toolsets"][0]["name"] == "core"


@pytest.mark.parametrize("mode", MODES)
async def test_bad_input_over_stdio_names_the_field(tmp_path: Path, mode: str) -> None:
    async with Client(stdio_params(tmp_path / "ws"), mode=mode) as client:
        unknown = await client.call_tool("train_everything", {})
        mistyped = await client.call_tool("system_status", {"sample_seconds": "soon"})
        out_of_range = await client.call_tool("system_status", {"sample_seconds": 60})
        extra = await client.call_tool("forge_overview", {"verbose": True})
    assert unknown.is_error and "unknown tool 'train_everything'" in unknown.content[0].text
    assert mistyped.is_error and "'sample_seconds': Input should be a valid number" in mistyped.content[0].text
    assert out_of_range.is_error and "'sample_seconds'" in out_of_range.content[0].text
    assert extra.is_error and "'verbose' is not an argument of this tool" in extra.content[0].text
    for reply in (unknown, mistyped, out_of_range, extra):
        text = reply.content[0].text
        assert "Traceback" not in text and str(tmp_path) not in text and "site-packages" not in text


def test_stdout_carries_only_protocol(tmp_path: Path) -> None:
    """Every line the server writes to stdout is a JSON-RPC message; logs go to stderr."""
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "system_status", "arguments": {}}},
    ]  # fmt: skip
    # stderr goes to a file, not a pipe read only at the end: DEBUG logs fill a pipe's 64 KiB,
    # and the server then blocks on its next log line, answering nothing.
    log = (tmp_path / "stderr.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "forge_mcp", "--home", str(tmp_path / "ws"), "--log-level", "DEBUG", "stdio"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("".join(json.dumps(r) + "\n" for r in requests))
    process.stdin.flush()
    messages = []
    deadline = time.monotonic() + 60
    # Keep stdin open until every answer is in: EOF tells the server to stop, in-flight requests too.
    while not {1, 2, 3} <= {m.get("id") for m in messages} and time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        line = process.stdout.readline() if ready else ""
        if not line:
            break
        if line.strip():
            messages.append(json.loads(line))
    rest, _ = process.communicate(timeout=30)  # closes stdin: the server stops
    log.close()
    stderr = (tmp_path / "stderr.log").read_text()
    messages += [json.loads(line) for line in rest.splitlines() if line.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert {m.get("id") for m in messages} >= {1, 2, 3}
    assert time.monotonic() < deadline, "the answers came only once stdin closed"
    assert "DEBUG" in stderr or "INFO" in stderr  # the logs went to stderr


@pytest.mark.parametrize("client", ["claude-desktop", "cursor"])
async def test_pasted_client_config_starts_a_working_server(tmp_path: Path, client: str) -> None:
    """What `forge-mcp client-config` prints (and the README shows) is launched the way the
    desktop app does it: that command, those args and env, from an unrelated directory."""
    printed = subprocess.run(
        [sys.executable, "-m", "forge_mcp", "--home", str(tmp_path / "ws"), "client-config", client],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    entry = json.loads(printed.stdout)["mcpServers"]["forge"]
    params = StdioServerParameters(command=entry["command"], args=entry["args"], env=entry["env"], cwd="/")
    async with Client(params) as client_session:
        overview = await client_session.call_tool("forge_overview", {})
    assert not overview.is_error
    assert overview.structured_content["workspace"]["root"] == str((tmp_path / "ws").resolve())
