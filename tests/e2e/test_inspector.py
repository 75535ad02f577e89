"""The MCP Inspector CLI — a client nobody here wrote — over stdio and over HTTP.
It is installed by `make test` from the committed package-lock.json."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forge_mcp.server_process import ServerProcess
from tests.conftest import ALL_TOOLS, REPO

pytestmark = pytest.mark.e2e

INSPECTOR = REPO / "node_modules" / ".bin" / "mcp-inspector"


def inspector(*args: str) -> dict:
    if not INSPECTOR.exists() or shutil.which("node") is None:
        pytest.fail("the MCP Inspector is not installed: run `make test` (it runs `npm ci`)")
    result = subprocess.run(
        [str(INSPECTOR), "--cli", *args], capture_output=True, text=True, timeout=120, cwd=REPO,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, f"inspector exited {result.returncode}: {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def stdio_command(home: Path) -> list[str]:
    return [sys.executable, "-m", "forge_mcp", "--home", str(home), "stdio"]


def test_tools_list_over_stdio(tmp_path: Path) -> None:
    listed = inspector(*stdio_command(tmp_path / "ws"), "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == ALL_TOOLS


def test_tools_call_over_stdio(tmp_path: Path) -> None:
    called = inspector(*stdio_command(tmp_path / "ws"), "--method", "tools/call", "--tool-name", "forge_overview")
    assert called.get("isError") in (None, False)
    assert called["structuredContent"]["name"] == "forge-mcp"


def test_tools_list_and_call_over_http(server: ServerProcess) -> None:
    url = f"{server.url}/mcp/"
    listed = inspector(url, "--transport", "http", "--method", "tools/list")
    called = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "system_status",
        "--tool-arg", "sample_seconds=0.1",
    )  # fmt: skip
    assert {t["name"] for t in listed["tools"]} == ALL_TOOLS
    assert called["structuredContent"]["memory_total_gib"] > 0


def test_resource_read_over_http(server: ServerProcess) -> None:
    read = inspector(f"{server.url}/mcp/", "--transport", "http", "--method", "resources/read", "--uri", "forge://overview")
    assert json.loads(read["contents"][0]["text"])["name"] == "forge-mcp"


def test_start_watch_and_cancel_jobs_from_the_inspector(server: ServerProcess) -> None:
    """The user story: start a benchmark from the Inspector, wait for it, cancel another."""
    url = f"{server.url}/mcp/"
    started = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "system_benchmark",
        "--tool-arg", "seconds_per_test=0.2", "--tool-arg", "backend=numpy",
    )  # fmt: skip
    job_id = started["structuredContent"]["job_id"]
    waited = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "job_wait",
        "--tool-arg", f"job_id={job_id}", "--tool-arg", "timeout_s=60",
    )  # fmt: skip
    assert waited["structuredContent"]["job"]["state"] == "SUCCEEDED"
    other = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "system_benchmark",
        "--tool-arg", "seconds_per_test=60", "--tool-arg", "backend=numpy",
    )  # fmt: skip
    canceled = inspector(
        url, "--transport", "http", "--method", "tools/call", "--tool-name", "job_cancel",
        "--tool-arg", f"job_id={other['structuredContent']['job_id']}",
    )  # fmt: skip
    assert canceled["structuredContent"]["state"] == "CANCELED"
