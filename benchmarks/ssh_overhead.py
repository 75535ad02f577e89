"""The SSH executor's overhead: the same tiny-model training job run here and on an SSH compute
target that is this machine too (a real OpenSSH server on loopback, as the tests start it), so
the difference is the executor's own work — pushing inputs over SFTP (skipped when the same
content is there), starting the worker through the SSH session, reading events and the log
back over SFTP each poll, and pulling the run folder home before the job is published.

Each side's time is the client's: from train_start to job_wait's answer that it ended. The
first SSH run pushes the base model and dataset (cold) and is reported on its own; then the
sides alternate in rounds (ABBA…), so a busy machine weighs on both, and each round's ratio
and their median are reported.

    make bench-ssh
    python -m benchmarks.ssh_overhead --steps 30 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.cells import ratios, seconds
from benchmarks.mcp_calls import call, wait
from benchmarks.train_sft import greetings

RECIPE = "sft-lora-tiny"


def spec(steps: int) -> dict[str, Any]:
    return {"base_model": "models/tiny", "dataset": "greet", "max_steps": steps, "save_steps": steps}


async def one_run(client: Any, steps: int, compute: str | None) -> dict[str, Any]:
    started_at = time.perf_counter()
    handle = await call(client, "train_start", {"recipe": RECIPE, "spec": spec(steps), **({"compute": compute} if compute else {})})
    job = await wait(client, handle["job_id"])
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"job {job['id']} ended {job['state']}: {job.get('error')}")
    return {"job_id": job["id"], "client_s": time.perf_counter() - started_at, "job_s": job["finished_at"] - job["started_at"],
            "host": job["host"], "executor": job["executor"]}  # fmt: skip


async def measure(url: str, sshd: Any, remote: Path, steps: int, rounds: int) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        await call(client, "compute_add", {
            "name": "loopback", "host": sshd.host, "port": sshd.port, "user": sshd.user, "key_path": "keys/loopback",
            "host_key_fingerprint": sshd.host_fingerprint(), "remote_dir": str(remote), "python": sys.executable,
        })  # fmt: skip
        await call(client, "dataset_import", {"path": "greet.jsonl", "name": "greet"})
        prepared = await call(client, "dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        await wait(client, prepared["job_id"])
        await one_run(client, steps, None)  # warm-up: this machine's caches, for both sides
        cold = await one_run(client, steps, "loopback")  # pushes the base model and the dataset
        local: list[dict[str, Any]] = []
        ssh: list[dict[str, Any]] = []
        for number in range(rounds):
            order = (None, "loopback") if number % 2 == 0 else ("loopback", None)
            for compute in order:
                (ssh if compute else local).append(await one_run(client, steps, compute))
    per_round = [s["client_s"] / b["client_s"] for s, b in zip(ssh, local, strict=True)]
    return {"cold_ssh": cold, "local": local, "ssh": ssh, "rounds_ratio": per_round,
            "median_ratio": statistics.median(per_round),
            "local_median_s": statistics.median(r["client_s"] for r in local),
            "ssh_median_s": statistics.median(r["client_s"] for r in ssh)}  # fmt: skip


def table(report: dict[str, Any], steps: int) -> str:
    local = [r["client_s"] for r in report["local"]]
    ssh = [r["client_s"] for r in report["ssh"]]
    return "\n".join([
        f"| tiny-model SFT, {steps} steps, train_start → ended | here | SSH (loopback) | ratio |",
        "|---|---:|---:|---:|",
        f"| median of {len(local)} runs a side | {report['local_median_s']:.2f} s | {report['ssh_median_s']:.2f} s | "
        f"**{report['median_ratio']:.2f}×** |",
        f"| per round | {seconds(local)} | {seconds(ssh)} | {ratios(report['rounds_ratio'])} |",
        f"| first SSH run (pushes the base model and dataset) | | {report['cold_ssh']['client_s']:.2f} s | |",
    ])  # fmt: skip


def main(folder: Path, steps: int, rounds: int) -> dict[str, Any]:
    # The loopback sshd the SSH tests start (tests/compute/sshd.py): generated host and client keys.
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.server_process import ServerProcess
    from tests.compute.sshd import Sshd, free_port

    run = folder / f"ssh-{int(time.time())}"
    home = run / "ws"
    build_tiny_model(home / "models" / "tiny")
    greetings(home / "greet.jsonl", 600)
    (run / "sshd").mkdir(parents=True)
    sshd = Sshd(run / "sshd", free_port()).start()
    try:
        (home / "keys").mkdir()
        shutil.copy(sshd.client_key, home / "keys" / "loopback")
        with ServerProcess(home) as live:
            report = asyncio.run(measure(live.url, sshd, run / "remote", steps, rounds))
    finally:
        sshd.stop()
    report.update(steps=steps, rounds=rounds, table=table(report, steps))
    (folder / "report-ssh.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="max_steps of every run")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating which side goes first")
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    print(main(args.folder.resolve(), args.steps, args.rounds)["table"])
