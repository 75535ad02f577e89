"""The core stays light: importing the app pulls none of the heavy stacks, and the CLI
answers --help without loading them."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "litellm", "trl", "peft", "mlx", "chromadb", "optuna", "langgraph")


def imported_modules(statement: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    names = set()
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    assert names, "python -X importtime printed nothing"
    return names


def test_app_import_pulls_no_heavy_stack() -> None:
    names = imported_modules("import forge_mcp.app")
    assert "forge_mcp.app" in names
    heavy = sorted(n for n in names if n.split(".")[0] in HEAVY)
    assert heavy == []


def test_cli_help_pulls_no_protocol_or_heavy_stack() -> None:
    names = imported_modules("import sys; sys.argv=['forge-mcp','--help']\nfrom forge_mcp.cli import main\ntry: main()\nexcept SystemExit: pass")
    roots = {n.split(".")[0] for n in names}
    assert not roots & set(HEAVY)
    assert "uvicorn" not in roots and "a2a" not in roots


def test_help_answers() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forge_mcp", "--help"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0
    for command in ("stdio", "serve", "call", "keys", "tools"):
        assert command in result.stdout


def test_building_the_http_app_leaves_mcp_a2a_sqlalchemy_and_httpx_for_later() -> None:
    """The MCP and A2A sides are built once the server is up (forge_mcp.protocols.mcp_side,
    a2a_side): /health does not wait for them."""
    names = imported_modules(
        "import tempfile\nfrom forge_mcp.app import ForgeApp\nfrom forge_mcp.settings import load_settings\n"
        "ForgeApp(load_settings(home=tempfile.mkdtemp())).http_app()"
    )
    assert "forge_mcp.protocols.a2a_side" in names and "forge_mcp.protocols.mcp_side" in names
    roots = {n.split(".")[0] for n in names}
    assert not roots & {"mcp", "a2a", "sqlalchemy", "httpx"}


def test_the_a2a_side_runs_without_sqlalchemy_even_where_it_is_installed() -> None:
    """The A2A tasks live in forge's own store (agents/a2a_store.py); a2a-sdk's database
    modules, which its packages import whenever SQLAlchemy is there, are left out."""
    script = (
        "import importlib.util, sys, tempfile\nfrom starlette.testclient import TestClient\n"
        "from forge_mcp.app import ForgeApp\nfrom forge_mcp.settings import load_settings\n"
        "assert importlib.util.find_spec('sqlalchemy'), 'installed here (optuna needs it)'\n"
        "app = ForgeApp(load_settings(home=tempfile.mkdtemp())).http_app()\n"
        "with TestClient(app, base_url='http://localhost:8000') as client:\n"
        "    assert client.get('/.well-known/agent-card.json').status_code == 200\n"
        "    answer = client.post('/a2a', headers={'A2A-Version': '1.0'}, json={'jsonrpc': '2.0', 'id': 1, "
        "'method': 'ListTasks', 'params': {}})\n"
        "    assert answer.status_code == 200 and 'result' in answer.json(), answer.text\n"
        "print(sorted(n for n in sys.modules if n.split('.')[0] == 'sqlalchemy'))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"
