"""Shared fixtures. End-to-end tests run the real `forge-mcp serve` in a child process on
a free loopback port and talk to it with the official clients."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.server_process import ServerProcess
from forge_mcp.settings import load_settings

REPO = Path(__file__).resolve().parent.parent
# The tool surface is a contract (DESIGN.md §3): tests pin it.
CORE_TOOLS = {"forge_overview", "system_status", "system_benchmark"}
JOB_TOOLS = {"job_list", "job_status", "job_wait", "job_logs", "job_metrics", "job_cancel", "job_resume"}
DATASET_TOOLS = {"dataset_import", "dataset_list", "dataset_inspect", "dataset_prepare"}
TRAINING_TOOLS = {"train_plan", "train_start"}
SWEEP_TOOLS = {"sweep_start", "sweep_status", "sweep_list"}
WORKFLOW_TOOLS = {"workflow_validate", "workflow_run", "workflow_status", "workflow_list"}
MODEL_TOOLS = {"model_register", "model_list", "model_get", "model_promote", "model_archive"}
EVALUATION_TOOLS = {"model_evaluate", "model_compare", "model_compare_report"}
EXPORT_TOOLS = {"model_export"}
SERVING_TOOLS = {"serve_start", "serve_list", "serve_stop", "model_generate"}
TRACE_TOOLS = {"trace_record", "trace_list", "trace_feedback", "traces_to_dataset", "trace_judge", "flywheel_run"}
PROMPT_TOOLS = {"prompt_save", "prompt_list", "prompt_diff", "prompt_render"}
RAG_TOOLS = {"rag_index", "rag_query"}
COMPUTE_TOOLS = {"compute_add", "compute_list", "compute_probe", "compute_remove"}
MONITOR_TOOLS = {"system_history"}
ALL_TOOLS = CORE_TOOLS | JOB_TOOLS | DATASET_TOOLS | TRAINING_TOOLS | SWEEP_TOOLS | MODEL_TOOLS | EVALUATION_TOOLS | EXPORT_TOOLS | SERVING_TOOLS | WORKFLOW_TOOLS | TRACE_TOOLS | PROMPT_TOOLS | RAG_TOOLS | COMPUTE_TOOLS | MONITOR_TOOLS


THREAD_ENVS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def pytest_configure(config: pytest.Config) -> None:
    """Each xdist worker's share of the cores for torch, inherited by every server and job
    worker a test starts: two workers each training with every core's worth of threads ran
    several times slower than their share (threads spinning for a core another one holds)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    share = max(1, (os.cpu_count() or 1) // workers)
    for name in THREAD_ENVS:
        os.environ.setdefault(name, str(share))
    # An OpenMP thread that waits spins on its core by default: beside another test's processes,
    # a torch run with two threads took twice as long as with passive waiting (measured).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Hundreds of tests start an engine, each of which would warm a worker (seconds of CPU importing
    # torch) that few jobs take: warm workers are off in the suite, whatever the shell says, and on
    # only in the tests of them (tests/jobs/test_warm_workers.py).
    os.environ["FORGE_WARM_WORKERS"] = "0"


# The suite's longest tests (minutes each in a loaded run on two cores), run first. Make hands
# the xdist workers their tests with --dist worksteal: a worker that runs out takes tests from
# the end of the other's queue, so what runs last is short. One of these started last kept a
# worker busy for minutes after the other had nothing left.
LONGEST_FIRST = (
    "tests/e2e/test_flywheel_demo.py",
    "tests/e2e/test_demo.py",
    "tests/e2e/test_training_methods.py::test_early_stopping",
    "tests/e2e/test_workflow_examples.py",
    "tests/compute/test_ssh_executor.py::test_training",
    "tests/compute/test_ray_executor.py",
    "tests/e2e/test_training_mcp.py::test_sft_lora",
    "tests/e2e/test_training_resume.py",
    "tests/e2e/test_sweeps_mcp.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return next((i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.startswith(prefix)), len(LONGEST_FIRST))

    items.sort(key=rank)  # stable: the rest keep their order


def suite_threads() -> str:
    """The torch threads a demo started by a test uses: this worker's share, as the demos accept it."""
    share = int(os.environ.get("OMP_NUM_THREADS", "2"))
    return str(max(n for n in (1, 2, 4, 8) if n <= max(share, 1)))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny offline chat model, built once per test run and shared by the xdist workers."""
    import fcntl

    from forge_mcp.backends.tiny_model import build_tiny_model

    # xdist workers each get basetemp/popen-gwN; their parent is this run's own folder.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    path = shared / "tiny-model"
    with (shared / "tiny-model.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "forge_tiny_model.json").exists():
            build_tiny_model(path)
    return path


@pytest.fixture
async def app(tmp_path: Path):  # noqa: ANN201
    """A ForgeApp on a fresh workspace, its store open and no job engine: for tests of the
    services behind the tools."""
    forge = ForgeApp(load_settings(home=tmp_path / "ws"))
    await forge.start(engine=False)
    yield forge
    await forge.stop()


@asynccontextmanager
async def mcp_client(transport: str, server: ServerProcess, tmp_path: Path, mode: str, **options: Any) -> AsyncIterator[Client]:
    """The official MCP client over `transport`: "http" to the live server, or "stdio" to a
    `forge-mcp stdio` of its own on a workspace under tmp_path."""
    if transport == "http":
        target: Any = f"{server.url}/mcp/"
    else:
        target = StdioServerParameters(command=sys.executable, args=["-m", "forge_mcp", "--home", str(tmp_path / "ws"), "stdio"])
    async with Client(target, mode=mode, **options) as client:
        yield client


def forge_cli(home: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point (`python -m forge_mcp`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "forge_mcp", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@dataclass(frozen=True)
class AuthServer:
    url: str
    home: Path
    log_path: Path
    keys: dict[str, str]  # name -> key: admin, reader, trainer, revoked


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("ws") / "forge-workspace"
    with ServerProcess(home) as live:
        yield live


@pytest.fixture(scope="module")
def test_kinds_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with the test job kinds and the test_job_start tool (FORGE_TEST_JOB_KINDS=1):
    for tests of the engine through the protocols, whose workload is a test_sleep, not a benchmark."""
    home = tmp_path_factory.mktemp("ws-test-kinds") / "forge-workspace"
    with ServerProcess(home, env={TEST_KINDS_ENV: "1"}) as live:
        yield live


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    home = tmp_path_factory.mktemp("ws-auth") / "forge-workspace"
    keys = {}
    for name, scopes in (("admin", "admin"), ("reader", "read"), ("trainer", "train"), ("revoked", "read")):
        created = forge_cli(home, "keys", "create", "--name", name, "--scopes", scopes)
        assert created.returncode == 0, created.stderr
        keys[name] = created.stdout.strip()
    assert forge_cli(home, "keys", "revoke", "revoked").returncode == 0
    with ServerProcess(home, args=("--auth", "on")) as live:
        yield AuthServer(url=live.url, home=home, log_path=live.log_path, keys=keys)
