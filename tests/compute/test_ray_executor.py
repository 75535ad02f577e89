"""The Ray executor on a real one-machine Ray cluster (`ray start --head` on 127.0.0.1, the
dashboard off), through the MCP client: compute_add probes the cluster's nodes and
resources; a training job and a two-trial sweep train there as Ray tasks and the adapter
is registered here; a `devices: 2` training runs its ranks as Ray Train workers; the monitor
samples the cluster; a service runs on this machine's node and answers; cancel reaches the Ray task; a Ray worker killed mid-job fails the job
with Ray's reason; a server killed mid-job finds its job again.

One cluster, and so one test whose steps are the scenarios: Ray takes fixed ports of its own,
so a second cluster on the machine (another xdist worker's) would collide."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.compute.conftest import SERVER_ENV, running
from tests.compute.raycluster import RayCluster
from tests.polling import until

pytest.importorskip("ray")
pytestmark = pytest.mark.e2e
CLUSTER_CPUS = 4  # Ray's logical CPUs: a data-parallel job's driving task and its two ranks take one each
TASK_TITLE = "ray::forge-job_"  # how Ray titles the worker process running a job's task (named forge-<job id>)


@pytest.mark.timeout(1200)
async def test_jobs_and_a_sweep_run_on_a_ray_cluster(tmp_path: Path, tiny_model: Path) -> None:
    cluster = RayCluster(cpus=CLUSTER_CPUS).start()
    try:
        with ServerProcess(tmp_path / "a", env=SERVER_ENV) as server:
            await compute_add_probes_the_cluster(server, cluster)
            await training_and_a_two_trial_sweep_run_on_the_cluster(server, tiny_model)
            await a_data_parallel_training_runs_its_ranks_as_ray_train_workers(server)
            await a_service_runs_on_this_machines_node_and_answers(server)
        with ServerProcess(tmp_path / "b", env={**SERVER_ENV, "FORGE_MONITOR_INTERVAL_S": "3"}) as server:
            await a_ray_worker_killed_mid_job_fails_the_job_with_the_reason(server, cluster)
            await the_cluster_is_sampled_as_one_host(server)
        await a_job_canceled_on_ray_ends_its_task_and_a_killed_server_finds_it_again(cluster, tmp_path / "c")
    finally:
        cluster.stop()


async def add_cluster(client: Client, cluster: RayCluster) -> dict[str, Any]:
    added = await client.call_tool("compute_add", {"name": "lab", "kind": "ray", "address": cluster.address})
    assert not added.is_error, added.content
    return added.structured_content


def task_processes(job_id: str) -> list[psutil.Process]:
    """The Ray worker process running this job's task ("there" is this machine)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(f"{TASK_TITLE}{job_id.removeprefix('job_')}" in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


async def task_runs(job_id: str) -> None:
    async def there() -> bool:
        return bool(task_processes(job_id))

    await until(there, timeout_s=90, what=f"job {job_id}'s Ray task to start")


async def compute_add_probes_the_cluster(server: ServerProcess, cluster: RayCluster) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        target = await add_cluster(client, cluster)
        listed = await client.call_tool("compute_list", {})
        both = await client.call_tool("compute_add", {"name": "bad", "kind": "ray", "address": cluster.address,
                                                      "host": "x"})  # fmt: skip
        none = await client.call_tool("compute_add", {"name": "bad", "kind": "ray"})
    probe = target["probe"]
    assert target["kind"] == "ray" and target["address"] == cluster.address
    assert probe["ray"] and probe["cpus"] == CLUSTER_CPUS and probe["gpu_count"] == 0
    assert [n["alive"] for n in probe["nodes"]] == [True] and probe["nodes"][0]["cpus"] == CLUSTER_CPUS
    assert probe["forge_mcp"], "a task on the cluster imported forge-mcp"
    assert [t["name"] for t in listed.structured_content["targets"]] == ["lab"]
    assert both.is_error and "remove host" in both.content[0].text
    assert none.is_error and "address" in none.content[0].text


async def a_job_canceled_on_ray_ends_its_task_and_a_killed_server_finds_it_again(cluster: RayCluster, home: Path) -> None:
    first = ServerProcess(home, env=SERVER_ENV)
    first.start()
    try:
        async with Client(f"{first.url}/mcp/") as client:
            await add_cluster(client, cluster)
            started = await client.call_tool("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600, "steps": 600},
                                                                "compute": "lab"})  # fmt: skip
            job_id = started.structured_content["job_id"]
            status = await running(client, job_id, timeout_s=90)
            await task_runs(job_id)
    finally:
        first.process.send_signal(signal.SIGKILL)  # the server dies; the driver and its task go on
        first.process.wait(10)
    tasks = task_processes(job_id)
    assert psutil.pid_exists(status["pid"]) and tasks
    with ServerProcess(home, env=SERVER_ENV) as second:
        async with Client(f"{second.url}/mcp/") as client:
            again = await client.call_tool("job_status", {"job_id": job_id})
            await client.call_tool("job_cancel", {"job_id": job_id})
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 90})
            logs = await client.call_tool("job_logs", {"job_id": job_id})
    assert again.structured_content["state"] == "RUNNING" and again.structured_content["pid"] == status["pid"]
    job = waited.structured_content["job"]
    assert job["state"] == "CANCELED" and (job["executor"], job["host"]) == ("ray", "lab"), job
    assert not psutil.wait_procs(tasks, timeout=30)[1], "the Ray task's process ended"
    text = logs.structured_content["text"]
    assert "submitted to the Ray cluster" in text and "stop requested" in text
    assert "[forge worker] canceled" in text  # the worker itself stopped (a training job saves its checkpoint first)


async def a_ray_worker_killed_mid_job_fails_the_job_with_the_reason(server: ServerProcess, cluster: RayCluster) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        await add_cluster(client, cluster)
        started = await client.call_tool("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 600, "steps": 600},
                                                            "compute": "lab"})  # fmt: skip
        job_id = started.structured_content["job_id"]
        await running(client, job_id, timeout_s=90)
        await task_runs(job_id)
        for process in task_processes(job_id):
            process.kill()
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 90})
    job = waited.structured_content["job"]
    assert job["state"] == "FAILED" and job["reason"] == "ray_worker_died", job
    assert "Ray worker" in job["error"] and "job_resume" in job["error"]


async def training_and_a_two_trial_sweep_run_on_the_cluster(server: ServerProcess, tiny_model: Path) -> None:
    """On the server where compute_add_probes_the_cluster added it."""
    from tests.e2e.test_training_mcp import greetings

    shutil.copytree(tiny_model, server.home / "models" / "tiny")
    greetings(server.home / "greet.jsonl", rows=80)
    spec = {"base_model": "models/tiny", "dataset": "greet", "eval_split": "test", "max_steps": 4, "logging_steps": 2,
            "eval_steps": 2}  # fmt: skip
    async with Client(f"{server.url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
        prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})
        started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec, "compute": "lab"})
        assert not started.is_error, started.content
        trained = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
        registered = await client.call_tool("model_register", {"name": "greeter", "job_id": started.structured_content["job_id"]})
        sweep = await client.call_tool("sweep_start", {
            "recipe": "sft-lora-tiny", "spec": spec, "space": {"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3}},
            "n_trials": 2, "parallel": 2, "pruner": "none", "compute": "lab",
        })  # fmt: skip
        assert not sweep.is_error, sweep.content
        swept = await client.call_tool("job_wait", {"job_id": sweep.structured_content["job_id"], "timeout_s": 400})
        status = await client.call_tool("sweep_status", {"sweep_id": sweep.structured_content["job_id"], "charts": False})
        trials = [(await client.call_tool("job_status", {"job_id": t["job_id"]})).structured_content
                  for t in status.structured_content["trials"]]  # fmt: skip
    job = trained.structured_content["job"]
    assert job["state"] == "SUCCEEDED" and (job["executor"], job["host"]) == ("ray", "lab"), job
    assert job["result"]["steps"] == 4
    assert not registered.is_error, registered.content
    assert swept.structured_content["job"]["state"] == "SUCCEEDED", swept.structured_content["job"]
    assert len(trials) == 2 and all((t["state"], t["executor"], t["host"]) == ("SUCCEEDED", "ray", "lab") for t in trials), trials


async def a_data_parallel_training_runs_its_ranks_as_ray_train_workers(server: ServerProcess) -> None:
    """On the server where the training step prepared the data: two ranks over gloo, placed by
    Ray Train, the same recipe in each; rank 0 reports to the job, rank 1 to its own events.
    Every process of the job carries its id, the ranks too; a cancel ends them all."""
    spec = {"base_model": "models/tiny", "dataset": "greet", "max_steps": 4, "logging_steps": 2, "devices": 2}
    async with Client(f"{server.url}/mcp/") as client:
        started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec, "compute": "lab"})
        assert not started.is_error, started.content
        job_id = started.structured_content["job_id"]
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 300})
        logs = await client.call_tool("job_logs", {"job_id": job_id})

        long = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": {**spec, "max_steps": 2000},
                                                      "compute": "lab"})  # fmt: skip
        long_id = long.structured_content["job_id"]
        await until(lambda: ranks_train(server, long_id), timeout_s=180, what="both ranks to take a step")
        every = job_processes(long_id)
        ranks = [p for p in every if "RayTrainWorker" in " ".join(p.cmdline())]  # Ray titles an actor's process
        await client.call_tool("job_cancel", {"job_id": long_id})
        canceled = await client.call_tool("job_wait", {"job_id": long_id, "timeout_s": 120})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED" and job["host"] == "lab", (job, logs.structured_content["text"][-3000:])
    assert job["result"]["steps"] == 4 and job["result"]["processes"] == 2, job["result"]
    assert "2 training processes on cpu as Ray Train workers" in logs.structured_content["text"]
    assert '"type":"metric"' in (server.home / "runs" / job_id / "events.rank1.jsonl").read_text()  # rank 1 trained too
    assert canceled.structured_content["job"]["state"] == "CANCELED", canceled.structured_content["job"]
    assert len(ranks) == 2, [p.cmdline() for p in every]
    assert not psutil.wait_procs(job_processes(long_id), timeout=60)[1], "every process of the job ended"


async def ranks_train(server: ServerProcess, job_id: str) -> bool:
    run = server.home / "runs" / job_id
    return all(f.is_file() and '"type":"progress"' in f.read_text() for f in (run / "events.jsonl", run / "events.rank1.jsonl"))


async def the_cluster_is_sampled_as_one_host(server: ServerProcess) -> None:
    """On a server that samples every 3 s, where the cluster was added (and so probed)."""
    found: dict[str, Any] = {}
    async with Client(f"{server.url}/mcp/") as client:
        async def sampled() -> bool:
            found.update((await client.call_tool("system_history", {"host": "lab", "minutes": 5})).structured_content)
            return bool(found["samples"])

        await until(sampled, timeout_s=120, what="a sample of the Ray cluster")
    sample = found["samples"][-1]
    assert sample["ram_total_bytes"] == psutil.virtual_memory().total  # its one node is this machine
    assert sample["cpu_percent"] is not None and sample["disk_free_bytes"] and sample["gpus"] == []


async def a_service_runs_on_this_machines_node_and_answers(server: ServerProcess) -> None:
    """On the server where the training step registered greeter: the service's task is pinned
    to the driver's node, whose loopback the URL it writes is on."""
    async with Client(f"{server.url}/mcp/") as client:
        served = await client.call_tool("serve_start", {"model": "greeter", "compute": "lab", "wait_s": 180})
        assert not served.is_error, served.content
        service = served.structured_content
        answered = await client.call_tool("model_generate", {"service": service["job_id"], "prompt": "Greet ann7.",
                                                             "max_tokens": 8})  # fmt: skip
        logs = await client.call_tool("job_logs", {"job_id": service["job_id"]})
        stopped = await client.call_tool("serve_stop", {"service": service["job_id"]})
    assert service["engine"] == "transformers" and not answered.is_error, answered.content
    assert '"node": "this machine\'s"' in logs.structured_content["text"]
    assert stopped.structured_content["state"] == "stopped"
