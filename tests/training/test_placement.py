"""Where train_plan places a run: here when it fits here, else the first compute target (by
name) whose last probe says it fits, each machine considered named in `placement`; a target
named by the caller is planned against as its probe found it; train_start queues the job
where the plan placed it. This machine is the planner's input, so the tests give it one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.compute.models import RayConfig, SshConfig
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.security.principal import Principal
from forge_mcp.training.machines import Machine
from forge_mcp.training.service import TrainingService

ALICE = Principal("alice", frozenset({"train"}))
# About 25 GiB on the CPU (full fine-tuning, 4096 rows of 512 tokens a step): more than the small machine.
BIG_RUN = {"base_model": "models/tiny", "dataset": "d", "adapter": "full", "batch_size": 4096, "max_length": 512}
SMALL_RUN = {"base_model": "models/tiny", "dataset": "d", "max_steps": 2}


def small_machine(root: Path) -> Machine:
    return Machine(name="local", gpu_memory_gib=(), bf16=False, memory_gib=4.0, mlx_metal=False, basis="a test's")


def ssh_probe(ram_gb: float) -> dict[str, object]:
    return {"os": "Linux", "cpus": 64, "ram_gb": ram_gb, "gpus": [], "python": "3.11.7", "forge_mcp": "0.1.0"}


async def add_target(repo: ComputeRepository, name: str, probe: dict[str, object] | None) -> None:
    config = SshConfig(host="10.0.0.7", port=22, user="ml", key_path="keys/box", host_key="ssh-ed25519 AAAA",
                       host_key_fingerprint="SHA256:x", remote_dir="forge-remote", python="python3")  # fmt: skip
    assert await repo.add(name, "ssh", config, principal="admin", created_at=1.0, probe=probe)


@pytest.fixture
async def training(app: ForgeApp, tiny_model: Path) -> TrainingService:
    shutil.copytree(tiny_model, app.settings.home / "models" / "tiny")
    rows = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    (app.settings.home / "d.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    await app.services.datasets.import_("d.jsonl", "d")
    compute = ComputeRepository(app.store)
    await add_target(compute, "a-unprobed", None)
    await add_target(compute, "b-small", ssh_probe(ram_gb=8))
    await add_target(compute, "c-big", ssh_probe(ram_gb=512))
    await app.services.compute.refresh()  # the SSH executor offers them, as after compute_add
    return TrainingService(app.workspace, DatasetRepository(app.store), app.jobs, JobRepository(app.store), compute,
                           here=small_machine)  # fmt: skip


async def test_a_run_that_fits_here_stays_here(training: TrainingService) -> None:
    plan = await training.plan(SMALL_RUN)
    assert plan.compute == "local" and plan.placement == [f"local: fits (cpu, ~{plan.memory.total_gib} GiB of 4.0 GiB)"]


async def test_a_run_too_big_for_here_goes_to_the_first_target_where_it_fits(training: TrainingService, app: ForgeApp) -> None:
    plan = await training.plan(BIG_RUN)
    assert plan.compute == "c-big" and plan.memory.fits and plan.memory.available_gib == 512
    assert plan.placement[0].startswith("local: does not fit (cpu, ~")
    assert plan.placement[1] == "a-unprobed: never probed"
    assert plan.placement[2].startswith("b-small: does not fit") and plan.placement[3].startswith("c-big: fits")
    handle = await training.start(ALICE, BIG_RUN)
    job = await app.jobs.repo.get(handle.job_id)
    assert (job.executor, job.host) == ("ssh", "c-big")


async def test_a_named_target_is_planned_as_its_probe_found_it(training: TrainingService) -> None:
    plan = await training.plan(BIG_RUN, compute="b-small")
    assert plan.compute == "b-small" and not plan.memory.fits and plan.memory.available_gib == 8
    assert plan.placement == ["b-small: named by the caller; planned against its last compute_probe (total RAM)"]
    here = await training.plan(BIG_RUN, compute="local")
    assert here.compute == "local" and not here.memory.fits
    with pytest.raises(InvalidArguments, match="a-unprobed was never probed; compute_probe it first"):
        await training.plan(SMALL_RUN, compute="a-unprobed")
    with pytest.raises(InvalidArguments, match="no compute target 'nowhere'.*compute_add"):
        await training.plan(SMALL_RUN, compute="nowhere")


async def test_a_run_that_fits_nowhere_is_refused_naming_every_machine(app: ForgeApp, training: TrainingService) -> None:
    await ComputeRepository(app.store).remove_unless_busy("c-big")
    plan = await training.plan(BIG_RUN)
    assert plan.compute == "local" and not plan.memory.fits and len(plan.placement) == 3
    with pytest.raises(InvalidArguments, match="b-small: does not fit"):
        await training.start(ALICE, BIG_RUN)


async def test_a_ray_cluster_is_planned_by_its_largest_node(app: ForgeApp, training: TrainingService) -> None:
    probe = {"cpus": 8, "ram_gb": 96, "gpus": [], "ray": "2.60.0", "gpu_count": 0, "nodes": [
        {"node_id": "n1", "alive": True, "cpus": 4, "gpus": 0, "memory_gb": 64},
        {"node_id": "n2", "alive": True, "cpus": 4, "gpus": 0, "memory_gb": 32},
        {"node_id": "n3", "alive": False, "cpus": 64, "gpus": 0, "memory_gb": 1024},
    ]}  # fmt: skip
    assert await ComputeRepository(app.store).add("lab", "ray", RayConfig(address="127.0.0.1:6379"), principal="admin",
                                                  created_at=1.0, probe=probe)  # fmt: skip
    plan = await training.plan(BIG_RUN, compute="lab")
    assert plan.memory.available_gib == 64 and plan.memory.fits  # one task runs on one node; n3 is down
