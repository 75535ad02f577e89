"""The per-method training benchmark, side by side in one run: for each method (sft, dpo,
orpo, kto, reward, grpo), a train_start job through MCP against the bare TRL trainer for that
method (benchmarks/train_bare_method.py) on the same tiny model, rows, hyperparameters, steps
and seed. Each repeat runs both sides, in alternating order; the ratio is of the medians of
optimizer steps per second (the same steps over the same rows, so the same work: GRPO's
sampled answers included), with input tokens per second beside it where TRL counts them.
The forge job keeps its default verified checkpoints (about ten a run, at least 50 steps apart:
three in 200 steps); the bare script saves none, so the ratio charges the forge side for its
crash safety.

    make bench-train
    python -m benchmarks.train_methods --steps 200 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.train_bare_method import (
    BATCH,
    COMPLETION_TOKENS,
    GENERATIONS,
    LEARNING_RATE,
    LORA_ALPHA,
    LORA_R,
    MAX_LENGTH,
    SEED,
)
from benchmarks.train_sft import greetings

METHODS = ("sft", "dpo", "orpo", "kto", "reward", "grpo")
DATASET = {"sft": "greet", "dpo": "prefs", "orpo": "prefs", "kto": "prefs", "reward": "prefs", "grpo": "colours"}


def write_rows(home: Path) -> None:
    from forge_mcp.backends.tiny_model import world

    greetings(home / "greet.jsonl", 400)
    pairs = [{"prompt": [{"role": "user", "content": f"Greet guest {i}."}],
              "chosen": [{"role": "assistant", "content": f"Hello, guest {i}! Welcome."}],
              "rejected": [{"role": "assistant", "content": "Go away."}]} for i in range(400)]  # fmt: skip
    (home / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    facts = sorted(world(0).items())
    chats = [{"messages": [{"role": "user", "content": f"What colour is the {thing}?"},
                           {"role": "assistant", "content": f"The {thing} is {colour}."}]}
             for thing, colour in (facts[i % len(facts)] for i in range(96))]  # fmt: skip
    (home / "colours.jsonl").write_text("".join(json.dumps(r) + "\n" for r in chats))


async def import_all(url: str) -> None:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        for name in ("greet", "prefs", "colours"):
            imported = await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
            if imported.is_error:
                raise SystemExit(f"could not import {name}: {imported.content[0].text}")


def spec_for(method: str, steps: int) -> dict[str, Any]:
    spec = {"base_model": "models/tiny", "dataset": DATASET[method], "method": method, "max_steps": steps,
            "learning_rate": LEARNING_RATE, "batch_size": BATCH, "max_length": MAX_LENGTH, "lora_r": LORA_R,
            "lora_alpha": LORA_ALPHA, "seed": SEED}  # fmt: skip
    if method == "grpo":
        spec.update(rewards=[{"name": "exact_match"}], num_generations=GENERATIONS, max_completion_length=COMPLETION_TOKENS)
    return spec


async def forge_run(url: str, method: str, steps: int) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        started = await client.call_tool("train_start", {"spec": spec_for(method, steps)})
        if started.is_error:
            raise SystemExit(f"train_start {method}: {started.content[0].text}")
        job = (await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 600})).structured_content["job"]
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"the forge {method} job failed: {job['error']}")
    result = job["result"]
    return {"steps_per_second": round(result["steps"] / result["train_runtime_s"], 3), "tokens_per_second": result["tokens_per_second"]}


def bare_run(home: Path, method: str, steps: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.train_bare_method", method, str(home / "models" / "tiny"),
                          str(home / f"{DATASET[method]}.jsonl"), "--steps", str(steps)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(folder: Path, steps: int, repeats: int, methods: tuple[str, ...]) -> dict[str, Any]:
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.server_process import ServerProcess

    home = folder / f"methods-{int(time.time())}"
    build_tiny_model(home / "models" / "tiny")
    write_rows(home)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {m: {"forge": [], "bare": []} for m in methods}
    with ServerProcess(home) as live:
        asyncio.run(import_all(live.url))
        for repeat in range(repeats):
            for method in methods:
                for side in ("forge", "bare") if repeat % 2 == 0 else ("bare", "forge"):
                    run = asyncio.run(forge_run(live.url, method, steps)) if side == "forge" else bare_run(home, method, steps)
                    runs[method][side].append(run)

    def median(values: list[dict[str, Any]], key: str) -> float | None:
        found = [v[key] for v in values if v.get(key)]
        return statistics.median(found) if found else None

    table = {}
    for method, sides in runs.items():
        forge_steps, bare_steps = median(sides["forge"], "steps_per_second"), median(sides["bare"], "steps_per_second")
        forge_tokens, bare_tokens = median(sides["forge"], "tokens_per_second"), median(sides["bare"], "tokens_per_second")
        table[method] = {"forge_steps_per_s": forge_steps, "bare_steps_per_s": bare_steps,
                         "steps_ratio": round(forge_steps / bare_steps, 3) if forge_steps and bare_steps else None,
                         "tokens_ratio": round(forge_tokens / bare_tokens, 3) if forge_tokens and bare_tokens else None}  # fmt: skip
    report = {"steps": steps, "repeats": repeats, "methods": table, "runs": runs}
    (folder / "report-train-methods.json").write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated, of " + ", ".join(METHODS))
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    report = main(args.folder.resolve(), args.steps, args.repeats, tuple(args.methods.split(",")))
    print(json.dumps({k: v for k, v in report.items() if k != "runs"}, indent=2))
