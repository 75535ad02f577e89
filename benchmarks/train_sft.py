"""The training benchmark, side by side in one run, same tiny model, data, steps and seed:
(a) tokens/s of a train_start SFT LoRA job against a bare TRL SFTTrainer script;
(b) wall time from the train_start call to the job's first optimizer step against a cold
    `python train_bare.py` to its first step;
(c) the job's peak memory against train_plan's estimate.
The server is already running, as it is for a user, with its warm worker (the warm_workers
setting, on by default) ready: each train_start waits for one that finished its imports, and
the report says whether the job started warm. Each repeat runs both sides, in alternating order.

    make bench-train
    python -m benchmarks.train_sft --steps 40 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RECIPE = "sft-lora-tiny"
NAMES = ("ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal")
WARM_WAIT_S = 300.0  # for a warm worker to import the training stack on a busy machine


def greetings(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            name = f"{rng.choice(NAMES)}{rng.randrange(1000)}"
            chat = [{"role": "user", "content": f"Greet {name} please."}, {"role": "assistant", "content": f"Hello, {name}! Welcome."}]
            f.write(json.dumps({"messages": chat}) + "\n")


async def setup(url: str, home: Path) -> Path:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
        job = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        done = await client.call_tool("job_wait", {"job_id": job.structured_content["job_id"], "timeout_s": 300})
    dataset = done.structured_content["job"]["result"]["dataset"]
    table = pq.read_table(home / dataset["path"] / "data.parquet")
    rows = table.filter(pc.equal(table.column("split"), "train")).column("row").to_pylist()
    bare = home / "bare-train.jsonl"
    bare.write_text("".join(r + "\n" for r in rows))  # exactly the rows the job trains on
    return bare


def wait_for_warm_worker(home: Path, taken: int) -> None:
    """Until a warm worker beyond the `taken` ones so far has done its imports (its ready line)."""
    from forge_mcp.jobs.constants import WARM_LOG

    log = home / WARM_LOG
    deadline = time.monotonic() + WARM_WAIT_S
    while not (log.exists() and log.read_text().count(" ready in ") > taken):
        if time.monotonic() > deadline:
            raise SystemExit(f"no warm worker was ready within {WARM_WAIT_S:.0f} s; {WARM_LOG} says why")
        time.sleep(0.1)


async def forge_run(url: str, home: Path, steps: int) -> dict[str, Any]:
    from mcp import Client

    from forge_mcp.workspace import Workspace

    spec = {"base_model": "models/tiny", "dataset": "greet", "max_steps": steps}
    async with Client(f"{url}/mcp/") as client:
        plan = (await client.call_tool("train_plan", {"recipe": RECIPE, "spec": spec})).structured_content
        called = time.time()
        started = await client.call_tool("train_start", {"recipe": RECIPE, "spec": spec})
        job_id = started.structured_content["job_id"]
        job = (await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 600})).structured_content["job"]
        metrics = await client.call_tool("job_metrics", {"job_id": job_id, "names": ["memory_gib"]})
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"the forge job failed: {job['error']}")
    events = [json.loads(line) for line in Workspace(home).run(job_id).events.read_text().splitlines()]
    first = next(e["at"] for e in events if e["type"] == "progress" and (e.get("done") or 0) >= 1)
    started = next(e for e in events if e["type"] == "started")
    [memory] = metrics.structured_content["series"]
    return {
        "warm": started.get("warm", False),
        "first_step_s": first - called,
        "tokens_per_second": job["result"]["tokens_per_second"],
        "peak_gib": max(p["value"] for p in memory["points"]),
        "estimate_gib": plan["memory"]["total_gib"],
    }


def bare_run(home: Path, data: Path, steps: int) -> dict[str, Any]:
    launched = time.time()
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_bare", str(home / "models" / "tiny"), str(data),
                          "--steps", str(steps)], capture_output=True, text=True, check=True)  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {"first_step_s": result["first_step_at"] - launched, "tokens_per_second": result["tokens_per_second"],
            "peak_gib": result["peak_rss_gib"]}  # fmt: skip


def main(folder: Path, steps: int, repeats: int) -> dict[str, Any]:
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.server_process import ServerProcess
    from forge_mcp.settings import load_settings

    home = folder / f"train-{int(time.time())}"
    warm = load_settings(home=home).warm_workers > 0  # FORGE_WARM_WORKERS=0 measures the cold start
    build_tiny_model(home / "models" / "tiny")
    greetings(home / "greet.jsonl", 600)
    forge, bare = [], []
    with ServerProcess(home) as live:
        data = asyncio.run(setup(live.url, home))
        for repeat in range(repeats):
            order = ("forge", "bare") if repeat % 2 == 0 else ("bare", "forge")
            for side in order:
                if side == "forge":
                    if warm:
                        wait_for_warm_worker(home, taken=len(forge))
                    forge.append(asyncio.run(forge_run(live.url, home, steps)))
                else:
                    bare.append(bare_run(home, data, steps))

    def median(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    report = {
        "steps": steps, "repeats": repeats, "forge": forge, "bare": bare,
        "tokens_per_second_ratio": round(median(forge, "tokens_per_second") / median(bare, "tokens_per_second"), 3),
        "first_step_ratio": round(median(forge, "first_step_s") / median(bare, "first_step_s"), 3),
        "memory_estimate_error": round(median(forge, "estimate_gib") / median(forge, "peak_gib") - 1, 3),
    }  # fmt: skip
    (folder / "report-train.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    print(json.dumps(main(args.folder.resolve(), args.steps, args.repeats), indent=2))
