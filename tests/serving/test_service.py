"""The serving service called in-process, as the operator and workflows will call it: a
caller lists, stops and queries only their own services (an admin: anyone's), a stop asks
first and a declined one stops nothing, and a refused request queues nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.compute.models import RayConfig
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))
SERVE = {"model_id": "tiny@v1", "engine": "transformers", "model_path": "models/tiny", "adapter_path": None,
         "gguf_file": None, "port": 0, "context_length": 2048, "external_command": None, "startup_timeout_s": 60.0}  # fmt: skip


async def test_a_caller_sees_and_stops_only_their_own_services(app: ForgeApp) -> None:
    serving = app.services.serving
    job_id = (await app.jobs.submit("serve", SERVE, "bob")).job_id
    assert (await serving.list(ALICE)).services == []
    assert [(s.job_id, s.state) for s in (await serving.list(BOB)).services] == [(job_id, "queued")]
    assert [s.job_id for s in (await serving.list(ADMIN)).services] == [job_id]
    with pytest.raises(NotFound, match=f"job_id: no job '{job_id}'"):
        await serving.stop(ALICE, job_id)
    with pytest.raises(NotFound, match="job_id: no job"):
        await serving.generate(ALICE, "Hi", service=job_id)


async def test_a_declined_stop_stops_nothing_and_an_accepted_one_stops(app: ForgeApp) -> None:
    serving = app.services.serving
    job_id = (await app.jobs.submit("serve", SERVE, "bob")).job_id
    questions: list[str] = []

    async def answer(yes: bool):  # noqa: ANN202
        async def confirm(question: str) -> bool:
            questions.append(question)
            return yes

        return confirm

    with pytest.raises(Conflict, match=f"confirmation: stopping {job_id} was declined; it keeps serving tiny@v1"):
        await serving.stop(BOB, job_id, await answer(False))
    assert (await app.jobs.get(job_id, BOB)).state is JobState.QUEUED
    stopped = await serving.stop(BOB, job_id, await answer(True))
    assert (stopped.state, questions) == ("stopped", [f"Stop the service {job_id} serving tiny@v1? Clients using its "
                                                      "endpoint will lose it."] * 2)  # fmt: skip
    again = await serving.stop(BOB, job_id, await answer(False))  # stopped already: nobody is asked
    assert (again.state, len(questions)) == ("stopped", 2)


async def test_a_job_that_is_not_a_service_is_refused_by_name(app: ForgeApp) -> None:
    job_id = (await app.jobs.submit("generate", {"model_id": "tiny@v1", "model_path": "models/tiny", "adapter_path": None,
                                                 "request": {"messages": []}}, "bob")).job_id  # fmt: skip
    with pytest.raises(InvalidArguments, match=f"service: {job_id} is a generate job, not a service"):
        await app.services.serving.stop(BOB, job_id)


@pytest.mark.parametrize("where", [{}, {"model": "tiny@v1", "service": "job_0123456789"}])
async def test_generate_wants_exactly_one_source_and_queues_nothing_otherwise(app: ForgeApp, where: dict[str, str]) -> None:
    with pytest.raises(InvalidArguments, match="model or service: give exactly one"):
        await app.services.serving.generate(ALICE, "Hi", **where)
    assert await app.jobs.list(ADMIN) == []


async def test_on_a_compute_target_the_engine_is_checked_against_that_machine(app: ForgeApp, tiny_model: Path) -> None:
    """vllm_command runs here, so vllm is refused for a target whatever this machine has; mlx
    needs a Mac there; auto is transformers there."""
    shutil.copytree(tiny_model, app.workspace.root / "models" / "tiny")
    await app.services.models.register(BOB, "tiny", path="models/tiny")
    linux = {"os": "Linux-6.1-x86_64-with-glibc2.36", "gpus": [{"index": 0, "name": "H200", "memory_gb": 139.8}]}
    await ComputeRepository(app.store).add("box", "ray", RayConfig(address="10.0.0.2:6379"), principal="root",
                                           created_at=0.0, probe=linux)  # fmt: skip
    app.serving.settings = app.settings.model_copy(update={"vllm_command": ["vllm"]})  # as if this machine had vllm
    arguments = await app.serving.arguments("tiny", "auto", None, 2048, compute="box")
    assert (arguments["engine"], arguments["gpus"], arguments["external_command"]) == ("transformers", 0, None)
    with pytest.raises(InvalidArguments, match=r"^engine: vllm runs this server's vllm_command, .* not on box"):
        await app.serving.arguments("tiny", "vllm", None, 2048, compute="box")
    with pytest.raises(InvalidArguments, match=r"^engine: mlx needs Apple Silicon, and box's last probe found Linux"):
        await app.serving.arguments("tiny", "mlx", None, 2048, compute="box")
    await ComputeRepository(app.store).add("far", "ray", RayConfig(address="ray://10.0.0.3:10001"), principal="root",
                                           created_at=0.0, probe=linux)  # fmt: skip
    with pytest.raises(InvalidArguments, match=r"^compute: far is reached through Ray Client \(ray://\), so a service"):
        await app.serving.arguments("tiny", "auto", None, 2048, compute="far")
