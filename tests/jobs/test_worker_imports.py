"""A worker imports the catalog entry it runs and nothing else (DESIGN §4): the kind lookup
of a training worker, before the job's own code imports torch, stays small.

Measured with this test's own method (modules new in sys.modules after the lookup): before
the catalog, finding `train` imported every toolset — 69 forge_mcp modules, 349 in all;
with it, 24 and 248 (pydantic is most of the rest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from forge_mcp.jobs.catalog import KINDS, TEST_KINDS

TRAIN_FORGE_MODULES_MAX = 28  # measured 24; a few of headroom, not room for a toolset or a domain
# Never in a worker's closure: the surfaces and their stacks, the database, and the heavy
# libraries a job imports itself once it runs.
NEVER = ("forge_mcp.tools", "forge_mcp.protocols", "forge_mcp.capabilities", "forge_mcp.services", "forge_mcp.app",
         "forge_mcp.jobs.engine", "mcp", "starlette", "a2a", "uvicorn", "httpx", "sqlalchemy", "torch", "transformers")  # fmt: skip


def lookup_closure(kind: str) -> list[str]:
    """The modules a fresh worker process has imported once it has found `kind`."""
    code = (
        "import json, sys\nbefore = set(sys.modules)\nfrom forge_mcp.worker import _find_kind\n"
        f"_find_kind({kind!r})\nprint(json.dumps(sorted(set(sys.modules) - before)))"
    )
    env = {**os.environ, "FORGE_TEST_JOB_KINDS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


def offending(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in NEVER)]


def test_a_training_worker_finds_its_kind_without_the_tools_protocols_or_other_domains() -> None:
    modules = lookup_closure("train")
    forge = [m for m in modules if m.split(".")[0] == "forge_mcp"]
    assert "forge_mcp.training.jobs" in forge
    assert offending(modules) == []
    others = [m for m in forge if m.startswith(("forge_mcp.models", "forge_mcp.serving", "forge_mcp.hardware", "forge_mcp.backends"))]
    assert others == []
    assert len(forge) <= TRAIN_FORGE_MODULES_MAX, forge


@pytest.mark.parametrize("kind", [entry.name for entry in KINDS + TEST_KINDS])
def test_every_kind_is_found_without_the_surfaces(kind: str) -> None:
    assert offending(lookup_closure(kind)) == []
