"""The sampler: each round writes a row for this machine (and one for each compute target that
answers), rows older than the retention go as new ones are written, the server samples from
start-up on its own, and a target out of reach records nothing and is reported with why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.compute.models import SshConfig
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.monitoring.repository import SampleRepository
from forge_mcp.monitoring.sampling import SAMPLE_PROGRAM, parse_cluster, parse_remote
from forge_mcp.monitoring.service import MonitoringService
from forge_mcp.settings import load_settings
from tests.compute.sshd import Sshd, free_port, keygen
from tests.monitoring.support import HOUR, START, Clock, sampler_for
from tests.polling import until


async def test_a_round_writes_this_machine_in_base_units(app: ForgeApp) -> None:
    taken = await sampler_for(app, Clock()).sample_once()
    assert list(taken) == ["local"]
    local = taken["local"]
    assert local.unix_time_s == START
    assert local.cpu_percent is not None and 0.0 <= local.cpu_percent <= 100.0
    assert local.ram_total_bytes and 0 < (local.ram_used_bytes or 0) < local.ram_total_bytes
    assert local.disk_total_bytes and 0 < (local.disk_free_bytes or 0) <= local.disk_total_bytes
    assert await SampleRepository(app.store).series("local", 0.0) == [local]


async def test_rows_past_the_retention_are_deleted_as_new_ones_are_written(app: ForgeApp) -> None:
    clock = Clock()
    sampler, samples = sampler_for(app, clock), SampleRepository(app.store)
    for _ in range(3):
        await sampler.sample_once()
        clock.now += HOUR / 2
    assert [s.unix_time_s for s in await samples.series("local", 0.0)] == [START, START + HOUR / 2, START + HOUR]
    clock.now = START + HOUR + HOUR / 2 + 1  # the first row is now older than the hour kept
    await sampler.sample_once()
    kept = [s.unix_time_s for s in await samples.series("local", 0.0)]
    assert kept == [START + HOUR, START + HOUR + HOUR / 2 + 1]
    assert await samples.count() == 2


async def test_the_server_samples_from_start_up_every_interval(tmp_path: Path) -> None:
    forge = ForgeApp(load_settings(home=tmp_path / "ws", monitor_interval_s=1.0))
    samples = SampleRepository(forge.store)
    async with forge.running():

        async def two_rounds() -> bool:
            return await samples.count("local") >= 2

        await until(two_rounds, timeout_s=30, what="two sampling rounds one second apart")
        times = [s.unix_time_s for s in await samples.series("local", 0.0)]
    assert times == sorted(times) and times[1] - times[0] >= 1.0  # the interval is slept between rounds
    assert forge.sampler.interval_s == 1.0


def add_target(app: ForgeApp, tmp_path: Path, name: str, port: int, host_key: str, key: Path) -> SshConfig:
    (app.workspace.root / "keys").mkdir(exist_ok=True)
    (app.workspace.root / "keys" / name).write_bytes(key.read_bytes())
    return SshConfig(host="127.0.0.1", port=port, user="nobody", key_path=f"keys/{name}", host_key=host_key,
                     host_key_fingerprint="SHA256:unused", remote_dir=str(tmp_path / "remote"), python=sys.executable)  # fmt: skip


async def test_a_target_out_of_reach_records_no_row_and_history_says_why(app: ForgeApp, tmp_path: Path) -> None:
    host_key = keygen(tmp_path / "host_ed25519")
    client_key = keygen(tmp_path / "client_ed25519")
    public = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    config = add_target(app, tmp_path, "dead-box", free_port(), public, client_key)  # nothing listens there
    targets = ComputeRepository(app.store)
    await targets.add("dead-box", "ssh", config, principal="admin", created_at=START, probe={"gpus": []})
    clock = Clock()
    sampler = sampler_for(app, clock)
    assert list(await sampler.sample_once()) == ["local"]
    failure = sampler.unreachable("dead-box")
    assert failure is not None and "cannot connect" in failure.error and failure.at == START
    history = await MonitoringService(SampleRepository(app.store), sampler, targets, clock=clock).history("dead-box", 60, 120, False)
    assert history.samples == [] and history.last_seen_unix_s is None
    assert history.note is not None and "did not answer" in history.note and "never sampled" in history.note


async def test_a_target_is_sampled_over_ssh_and_then_reported_last_seen(app: ForgeApp, tmp_path: Path) -> None:
    daemon = Sshd(tmp_path / "sshd", free_port())
    daemon.folder.mkdir()
    daemon.start()  # skips where sshd is not installed
    try:
        config = add_target(app, tmp_path, "box", daemon.port, daemon.host_public_key, daemon.client_key)
        config = SshConfig(**{**config.__dict__, "user": daemon.user})
        targets = ComputeRepository(app.store)
        await targets.add("box", "ssh", config, principal="admin", created_at=START, probe={"gpus": []})
        clock = Clock()
        sampler = sampler_for(app, clock)
        taken = await sampler.sample_once()
        assert sorted(taken) == ["box", "local"]
        box = taken["box"]
        assert box.unix_time_s == START and box.cpu_percent is not None and 0.0 <= box.cpu_percent <= 100.0
        assert box.ram_total_bytes and box.disk_free_bytes  # the target is this machine, seen through sshd
    finally:
        daemon.stop(sessions_too=True)
    clock.now += 600
    assert list(await sampler.sample_once()) == ["local"]  # the host is gone: no row for it
    history = await MonitoringService(SampleRepository(app.store), sampler, targets, clock=clock).history("box", 60, 120, False)
    assert [s.unix_time_s for s in history.samples] == [START] and history.last_seen_unix_s == START
    assert history.note is not None and "did not answer" in history.note and "(10 min ago)" in history.note


def test_the_target_program_runs_on_a_plain_python_and_its_line_parses(tmp_path: Path) -> None:
    """The program that goes over SSH, run here with `python -I` (no site-packages): standard
    library only, disk measured where the folder would be even before it exists."""
    import subprocess

    done = subprocess.run([sys.executable, "-I", "-", str(tmp_path / "not" / "yet")], input=SAMPLE_PROGRAM,
                          capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    sample = parse_remote(done.stdout, START)
    assert sample.unix_time_s == START and sample.disk_total_bytes and sample.ram_total_bytes
    if sys.platform == "linux":
        assert sample.cpu_percent is not None and 0.0 <= sample.cpu_percent <= 100.0
    with pytest.raises(ValueError, match="printed no result"):
        parse_remote("Traceback (most recent call last): …\n", START)


def test_a_ray_cluster_is_one_host_summing_its_nodes() -> None:
    """ray_probe --sample's line: each alive node's sampling-program output, by node."""
    gpu = "0, NVIDIA H200, 50, 1000, 141000, 40, 300.5\n"
    nodes = [{"cpu_percent": 20.0, "ram_total_bytes": 100, "ram_used_bytes": 40, "disk_free_bytes": 7, "disk_total_bytes": 9,
              "nvidia_smi": gpu},
             {"cpu_percent": 60.0, "ram_total_bytes": 200, "ram_used_bytes": 50, "disk_free_bytes": 7, "disk_total_bytes": 9,
              "nvidia_smi": gpu}]  # fmt: skip
    line = json.dumps({"nodes": [{"address": f"10.0.0.{i}", "stdout": json.dumps(n) + "\n"} for i, n in enumerate(nodes)]})
    cluster = parse_cluster("ray says hello\n" + line + "\n", START)
    assert (cluster.cpu_percent, cluster.ram_used_bytes, cluster.ram_total_bytes) == (40.0, 90, 300)
    assert (cluster.disk_free_bytes, cluster.disk_total_bytes) == (7, 9)  # the shared workspace, once
    assert [g.index for g in cluster.gpus] == [0, 1] and cluster.gpus[1].name == "NVIDIA H200"
    with pytest.raises(ValueError, match="no alive node"):
        parse_cluster(json.dumps({"nodes": []}), START)
