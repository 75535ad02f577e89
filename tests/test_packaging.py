"""The wheel installs tools/, agents/ and backends/ under forge_mcp, ships cards/ and
configs/ as package data, and works without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ALL_TOOLS, REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    [built] = out.glob("forge_mcp-*.whl")
    return built


def test_wheel_layout(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "forge_mcp/app.py",
        "forge_mcp/tools/core.py",
        "forge_mcp/agents/a2a_executor.py",
        "forge_mcp/hardware/probe.py",
        "forge_mcp/cards/agent.yaml",
        "forge_mcp/configs/server/default.yaml",
        "forge_mcp/migrations/0001_initial.sql",
        "forge_mcp/migrations/0002_jobs.sql",
        "forge_mcp/jobs/engine.py",
    ):
        assert expected in names, expected
    top_level = {name.split("/")[0] for name in names}
    assert not top_level & {"tools", "agents", "backends", "cards", "configs", "tests"}


def test_installed_wheel_works_without_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    probe = (
        "import forge_mcp, json\n"
        "from forge_mcp.app import ForgeApp\n"
        "from forge_mcp.settings import load_settings\n"
        "from forge_mcp.protocols.a2a_card import build_agent_card\n"
        "app = ForgeApp(load_settings(home='ws'))\n"
        "card = build_agent_card(app.registry, app.settings)\n"
        "print(json.dumps({'file': forge_mcp.__file__, 'tools': [c.name for c in app.registry], 'card': card.name}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={"PYTHONPATH": str(target), "PATH": ""},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    out = json.loads(result.stdout)
    assert out["file"].startswith(str(target))
    assert set(out["tools"]) == ALL_TOOLS and out["card"] == "forge-mcp"
