"""The SSH executor over a real sshd on loopback, through the MCP client: a job named to a
compute target runs there (the target's workspace is its own folder), its events, progress
and log come back, its run folder is pulled home, cancel reaches its process group there,
and an unknown target is refused at submission; training runs there and its adapter is
registered here, inputs pushed once, and its evaluation and export run there too; a server
killed mid-job finds the worker again."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.compute.conftest import SERVER_ENV, running, workspace_with_key
from tests.compute.sshd import Sshd
from tests.polling import until

pytest.importorskip("paramiko")
pytestmark = pytest.mark.e2e
ENV = SERVER_ENV
SHORT_LEASE = {**ENV, "FORGE_JOB_LEASE_S": "4", "FORGE_JOB_HEARTBEAT_S": "1"}  # a host out of reach is lost in seconds


def port_refuses(url: str) -> bool:
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) != 0


async def add_box(client: Client, sshd: Sshd, remote: Path) -> None:
    added = await client.call_tool("compute_add", {
        "name": "box", "host": sshd.host, "port": sshd.port, "user": sshd.user, "key_path": "keys/box",
        "host_key_fingerprint": sshd.host_fingerprint(), "remote_dir": str(remote), "python": sys.executable,
    })  # fmt: skip
    assert not added.is_error, added.content


async def start(client: Client, kind: str, arguments: dict[str, Any], compute: str | None = "box") -> Any:
    return await client.call_tool("test_job_start", {"kind": kind, "arguments": arguments, "compute": compute})


async def test_a_job_runs_on_the_target_and_comes_home(server: ServerProcess, sshd: Sshd, tmp_path: Path) -> None:
    remote = tmp_path / "remote-box"
    notes: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        notes.append(f"{done}/{total}")

    async with Client(f"{server.url}/mcp/") as client:
        await add_box(client, sshd, remote)
        started = await start(client, "test_events", {"progress": 4, "metrics": 3, "log_lines": 5, "interval_s": 0.2})
        assert not started.is_error, started.content
        job_id = started.structured_content["job_id"]
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 120}, progress_callback=on_progress)
        logs = await client.call_tool("job_logs", {"job_id": job_id})
        metrics = await client.call_tool("job_metrics", {"job_id": job_id})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job
    assert job["executor"] == "ssh" and job["host"] == "box"
    assert job["result"]["progress"] == 4 and notes
    assert metrics.structured_content["series"], "the metric events came back"
    # The worker ran in the target's workspace, and its run folder came home.
    assert (remote / "runs" / job_id / "events.jsonl").is_file()
    assert (server.home / "runs" / job_id / "worker.log").is_file()
    assert "log line" in logs.structured_content["text"] or logs.structured_content["size"] > 0


async def test_cancel_reaches_the_worker_there(server: ServerProcess, sshd: Sshd, tmp_path: Path) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        await add_box(client, sshd, tmp_path / "remote-box")
        started = await start(client, "test_sleep", {"seconds": 600, "steps": 600})
        job_id = started.structured_content["job_id"]
        pid = (await running(client, job_id))["pid"]
        assert psutil.pid_exists(pid)  # "there" is this machine: the worker is visible to the test

        async def logged() -> bool:  # its log there, read over SFTP while it runs
            return "test_sleep" in (await client.call_tool("job_logs", {"job_id": job_id})).structured_content["text"]

        await until(logged, timeout_s=60, what="the worker's first log line")
        busy = await client.call_tool("compute_remove", {"name": "box"})
        assert busy.is_error and "running there" in busy.content[0].text
        await client.call_tool("job_cancel", {"job_id": job_id})
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 60})
        sshd.stop(sessions_too=True)  # the host goes away: the canceled job's log was brought home
        logs = await client.call_tool("job_logs", {"job_id": job_id})
        sshd.start()
        resumed = await client.call_tool("job_resume", {"job_id": job_id})  # runs where the old one ran
        again = await running(client, resumed.structured_content["job_id"])
        await client.call_tool("job_cancel", {"job_id": again["id"]})
        await client.call_tool("job_wait", {"job_id": again["id"], "timeout_s": 60})
    assert waited.structured_content["job"]["state"] == "CANCELED"
    assert not logs.is_error and "test_sleep" in logs.structured_content["text"], logs.content
    assert (again["executor"], again["host"]) == ("ssh", "box")
    gone = psutil.wait_procs([psutil.Process(pid)], timeout=10)[0] if psutil.pid_exists(pid) else []
    assert not psutil.pid_exists(pid) or gone


async def test_an_unknown_target_is_refused_at_submission(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        refused = await start(client, "test_sleep", {"seconds": 1}, compute="nowhere")
    assert refused.is_error and "compute" in refused.content[0].text and "compute_add" in refused.content[0].text


async def test_training_runs_there_its_adapter_is_registered_here_and_inputs_are_pushed_once(
    server: ServerProcess, sshd: Sshd, tmp_path: Path, tiny_model: Path
) -> None:
    from tests.e2e.test_training_mcp import greetings

    remote = tmp_path / "remote-box"
    shutil.copytree(tiny_model, server.home / "models" / "tiny")
    greetings(server.home / "greet.jsonl", rows=80)
    spec = {"base_model": "models/tiny", "dataset": "greet", "eval_split": "test", "max_steps": 6, "logging_steps": 2}
    async with Client(f"{server.url}/mcp/") as client:
        await add_box(client, sshd, remote)
        await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
        prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})
        runs = []
        for _ in range(2):
            started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec, "compute": "box"})
            assert not started.is_error, started.content
            waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
            runs.append(waited.structured_content["job"])
            weights = remote / "models" / "tiny" / "model.safetensors"
            if len(runs) == 1:
                pushed_at = weights.stat().st_mtime_ns
        registered = await client.call_tool("model_register", {"name": "greeter", "job_id": runs[0]["id"]})
        there = []  # evaluation and export run there too, their outputs published here
        for tool, arguments in (("model_evaluate", {"model": "greeter", "dataset": "greet", "split": "test", "limit": 4,
                                                    "max_new_tokens": 8}),
                                ("model_export", {"model": "greeter", "format": "adapter"})):  # fmt: skip
            started = await client.call_tool(tool, {**arguments, "compute": "box"})
            assert not started.is_error, started.content
            waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
            there.append(waited.structured_content["job"])
        version = await client.call_tool("model_get", {"model": "greeter"})
        # A service there, reached through the server's tunnel on loopback here.
        served = await client.call_tool("serve_start", {"model": "greeter", "engine": "transformers", "compute": "box",
                                                        "wait_s": 240})  # fmt: skip
        assert not served.is_error, served.content
        service = served.structured_content
        answered = await client.call_tool("model_generate", {"service": service["job_id"], "prompt": "Greet ann7.",
                                                             "max_tokens": 8})  # fmt: skip
        stopped = await client.call_tool("serve_stop", {"service": service["job_id"]})
    for job in runs:
        assert job["state"] == "SUCCEEDED" and job["host"] == "box", job
        assert job["result"]["steps"] == 6 and job["result"]["final_loss"] < job["result"]["first_loss"]
    assert weights.stat().st_mtime_ns == pushed_at  # the second run found the base model there already
    assert not registered.is_error, registered.content
    adapter = server.home / runs[0]["result"]["adapter"]
    assert (adapter / "adapter_model.safetensors").is_file()  # trained there, home before it was published
    evaluated, exported = there
    assert all(job["state"] == "SUCCEEDED" and (job["executor"], job["host"]) == ("ssh", "box") for job in there), there
    assert "exact_match" in evaluated["result"]["metrics"]
    assert (server.home / exported["result"]["path"] / "adapter_model.safetensors").is_file()
    assert service["url"].startswith("http://127.0.0.1:") and not answered.is_error, answered.content
    assert answered.structured_content["text"] is not None and stopped.structured_content["state"] == "stopped"
    remote_service = json.loads((remote / "runs" / service["job_id"] / "service.json").read_text())
    assert remote_service["url"] != service["url"]  # it listens on the target's loopback; here is the tunnel's port
    assert port_refuses(service["url"])  # the tunnel closed with the service
    detail = version.structured_content
    assert "exact_match" in detail["model"]["metrics"] and [e["key"] for e in detail["exports"]] == ["adapter"], detail


async def test_a_server_killed_mid_job_finds_the_worker_there_again(sshd: Sshd, tmp_path: Path) -> None:
    home = workspace_with_key(tmp_path, sshd)
    first = ServerProcess(home, env=ENV)
    first.start()
    try:
        async with Client(f"{first.url}/mcp/") as client:
            await add_box(client, sshd, tmp_path / "remote-box")
            started = await start(client, "test_sleep", {"seconds": 6, "steps": 6})
            job_id = started.structured_content["job_id"]
            status = await running(client, job_id)
    finally:
        first.process.send_signal(signal.SIGKILL)  # the server dies; the worker there goes on
        first.process.wait(10)
    assert psutil.pid_exists(status["pid"])
    with ServerProcess(home, env=ENV) as second:
        async with Client(f"{second.url}/mcp/") as client:
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 120})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED" and job["attempt"] == 1 and job["pid"] == status["pid"], job


async def test_a_target_without_this_forge_mcp_is_refused_at_launch(server: ServerProcess, sshd: Sshd, tmp_path: Path) -> None:
    bare = tmp_path / "bare-python"  # a Python there without site-packages: no forge-mcp
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    async with Client(f"{server.url}/mcp/") as client:
        added = await client.call_tool("compute_add", {
            "name": "bare", "host": sshd.host, "port": sshd.port, "user": sshd.user, "key_path": "keys/box",
            "host_key_fingerprint": sshd.host_fingerprint(), "python": str(bare),
        })  # fmt: skip
        assert not added.is_error and added.structured_content["probe"]["forge_mcp"] is None, added.content
        started = await start(client, "test_sleep", {"seconds": 1}, compute="bare")
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 60})
    job = waited.structured_content["job"]
    assert job["state"] == "FAILED" and job["reason"] == "launch_failed", job
    assert "not installed" in job["error"] and "compute_probe" in job["error"]


async def test_a_host_that_stays_out_of_reach_fails_its_job_saying_so(sshd: Sshd, tmp_path: Path) -> None:
    home = workspace_with_key(tmp_path, sshd)
    env = {**SHORT_LEASE, "FORGE_JOB_MAX_ATTEMPTS": "1"}
    with ServerProcess(home, env=env) as server:
        async with Client(f"{server.url}/mcp/") as client:
            await add_box(client, sshd, tmp_path / "remote-box")
            started = await start(client, "test_sleep", {"seconds": 600, "steps": 600})
            job_id = started.structured_content["job_id"]
            pid = (await running(client, job_id))["pid"]
            sshd.stop(sessions_too=True)  # the host drops off the network: nothing there answers
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 120})
    job = waited.structured_content["job"]
    assert job["state"] == "FAILED" and job["reason"] == "host_unreachable", job
    assert "cannot connect" in job["error"] and "may still run" in job["error"], job["error"]
    psutil.Process(pid).kill()  # it did: "there" is this machine


async def test_a_job_that_allows_it_runs_again_here_when_its_host_is_lost(sshd: Sshd, tmp_path: Path) -> None:
    home = workspace_with_key(tmp_path, sshd)
    env = {**SHORT_LEASE, "FORGE_JOB_MAX_ATTEMPTS": "2"}
    with ServerProcess(home, env=env) as server:
        async with Client(f"{server.url}/mcp/") as client:
            await add_box(client, sshd, tmp_path / "remote-box")
            started = await client.call_tool("test_job_start", {"kind": "test_sleep", "arguments": {"seconds": 6, "steps": 6},
                                                                "compute": "box", "retry_elsewhere": True})  # fmt: skip
            job_id = started.structured_content["job_id"]
            there = await running(client, job_id)
            sshd.stop(sessions_too=True)  # the host drops off the network mid-run
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 120})
            logs = await client.call_tool("job_logs", {"job_id": job_id})
    job = waited.structured_content["job"]
    assert (there["executor"], there["host"]) == ("ssh", "box")
    assert job["state"] == "SUCCEEDED" and job["executor"] == "local" and job["attempt"] == 2, job
    assert job["retry_elsewhere"] and "test_sleep" in logs.structured_content["text"]
    with contextlib.suppress(psutil.NoSuchProcess):
        psutil.Process(there["pid"]).kill()  # the first attempt's worker ("there" is this machine) may still run


async def test_a_service_there_is_reached_again_after_the_server_restarts(sshd: Sshd, tmp_path: Path, tiny_model: Path) -> None:
    """The tunnel lives in the server: a new server opens it again, and the service's URL
    (written here as the tunnel's) answers as before."""
    home = workspace_with_key(tmp_path, sshd)
    shutil.copytree(tiny_model, home / "models" / "tiny")
    first = ServerProcess(home, env=ENV)
    first.start()
    try:
        async with Client(f"{first.url}/mcp/") as client:
            await add_box(client, sshd, tmp_path / "remote-box")
            await client.call_tool("model_register", {"name": "tiny", "path": "models/tiny"})
            served = await client.call_tool("serve_start", {"model": "tiny", "engine": "transformers", "compute": "box",
                                                            "wait_s": 240})  # fmt: skip
            assert not served.is_error, served.content
    finally:
        first.process.send_signal(signal.SIGKILL)  # the server dies, and its tunnel with it; the service there goes on
        first.process.wait(10)
    service = served.structured_content
    assert port_refuses(service["url"])
    with ServerProcess(home, env=ENV) as second:
        async with Client(f"{second.url}/mcp/") as client:
            async def answers() -> bool:
                reply = await client.call_tool("model_generate", {"service": service["job_id"], "prompt": "Hi.", "max_tokens": 4})
                return not reply.is_error

            await until(answers, timeout_s=60, what="the service to answer through a new tunnel")
            listed = (await client.call_tool("serve_list", {})).structured_content["services"]
            stopped = await client.call_tool("serve_stop", {"service": service["job_id"]})
    [again] = listed
    assert again["url"].startswith("http://127.0.0.1:") and again["job_id"] == service["job_id"]
    assert stopped.structured_content["state"] == "stopped"
    assert port_refuses(again["url"])
