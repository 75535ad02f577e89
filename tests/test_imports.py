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


def test_building_the_http_app_leaves_a2a_sqlalchemy_and_httpx_for_later() -> None:
    """The A2A side is built once the server is up (forge_mcp.protocols.a2a_side): /health does not wait for it."""
    names = imported_modules(
        "import tempfile\nfrom forge_mcp.app import ForgeApp\nfrom forge_mcp.settings import load_settings\n"
        "ForgeApp(load_settings(home=tempfile.mkdtemp())).http_app()"
    )
    assert "forge_mcp.protocols.a2a_side" in names
    roots = {n.split(".")[0] for n in names}
    assert not roots & {"a2a", "sqlalchemy", "httpx"}
