"""The sweep benchmark, side by side in one run, on the tiny model and one live server:
(a) pruning: the same sweep (same space, sampler tpe, seed, n_trials, one trial at a time) with
    the median pruner and with pruner none: the optimizer steps all trials ran together
    (SweepResult.total_steps) and the best eval_loss each found;
(b) overhead: trials of a sweep whose space is one point (lora_r: [8], pruner none, one at a
    time) against the same spec run as train_start jobs one after another: the mean wall time
    of a trial's job (started_at..finished_at), and the whole side's wall time per trial
    (first call to last job ended, from the client), which includes the sweep's gaps between
    trials. The two sides alternate in rounds (ABBA...), so a busy machine weighs on both; each
    round's ratio and their median are reported too, as one slow job moves a mean a lot.
Everything goes through `forge-mcp serve` and the MCP client, as a user's agent would.

    make bench-sweep
    python -m benchmarks.sweep --trials 12 --steps 50 --overhead-trials 3 --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.cells import loads, ratios, seconds
from benchmarks.mcp_calls import call, wait
from benchmarks.train_sft import greetings

RECIPE = "sft-lora-tiny"
# The space of configs/sweeps/lr-rank-tiny.yaml: three and a half decades of learning rate, so
# its low end barely moves the loss in a short run (clearly bad trials exist for a pruner to
# stop), and the LoRA rank.
SPACE = {"learning_rate": {"type": "float", "low": 1.0e-5, "high": 3.0e-2, "log": True},
         "lora_r": {"type": "int", "low": 4, "high": 16, "step": 4}}  # fmt: skip
ONE_POINT = {"lora_r": {"type": "categorical", "choices": [8]}}  # the recipe's own rank: every trial is the recipe
GOAL_STEPS_SAVED = 0.40  # the pruned sweep runs at least this share fewer steps
GOAL_OBJECTIVE = 0.02  # with its best eval_loss at most this much above the unpruned sweep's
GOAL_OVERHEAD = 1.05  # a trial inside a sweep takes at most this times a standalone job


def base_spec(steps: int) -> dict[str, Any]:
    # Eval loss five times a run: the points the pruner decides on. One checkpoint, at the end.
    return {"base_model": "models/tiny", "dataset": "greet", "max_steps": steps, "eval_split": "test",
            "eval_steps": max(1, steps // 5), "save_steps": steps}  # fmt: skip


async def prepare(client: Any) -> None:
    await call(client, "dataset_import", {"path": "greet.jsonl", "name": "greet"})
    job = await call(client, "dataset_prepare", {"dataset": "greet", "dedup": "exact"})
    if (await wait(client, job["job_id"]))["state"] != "SUCCEEDED":
        raise SystemExit("dataset_prepare failed")


def job_figures(job: dict[str, Any]) -> dict[str, Any]:
    """A train job's own wall time and the optimizer steps it ran (a canceled one: as far as it got)."""
    return {"job_id": job["id"], "job_state": job["state"], "wall_s": job["finished_at"] - job["started_at"],
            "queued_s": job["started_at"] - job["created_at"], "steps_ran": job["progress"]["done"]}  # fmt: skip


async def run_sweep(client: Any, steps: int, space: dict[str, Any], trials: int, pruner: str, seed: int
                    ) -> dict[str, Any]:  # fmt: skip
    arguments = {"recipe": RECIPE, "spec": base_spec(steps), "space": space, "n_trials": trials, "parallel": 1,
                 "sampler": "tpe", "pruner": pruner, "seed": seed}  # fmt: skip
    called = time.time()
    handle = await call(client, "sweep_start", arguments)
    job = await wait(client, handle["job_id"])
    ended = time.time()
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"the {pruner} sweep {job['id']} ended {job['state']}: {job['error']}")
    result = job["result"]
    jobs = [job_figures(await call(client, "job_status", {"job_id": t["job_id"]})) for t in result["trials"]]
    return {
        "sweep_id": job["id"], "pruner": pruner, "client_wall_s": ended - called,
        "total_steps": result["total_steps"], "steps_ran": sum(j["steps_ran"] or 0 for j in jobs),
        "best_value": result["best_value"], "best_params": result["best_params"],
        "complete": result["complete"], "pruned": result["pruned"], "failed": result["failed"],
        "trials": [{**t, **j} for t, j in zip(result["trials"], jobs, strict=True)], "load_after": os.getloadavg()[0],
    }  # fmt: skip


async def run_standalone(client: Any, steps: int, count: int) -> dict[str, Any]:
    """`count` train_start jobs one after another, the spec a one-point sweep's trial gets."""
    spec = {**base_spec(steps), **{name: p["choices"][0] for name, p in ONE_POINT.items()}}
    called = time.time()
    jobs = []
    for _ in range(count):
        handle = await call(client, "train_start", {"recipe": RECIPE, "spec": spec})
        job = await wait(client, handle["job_id"])
        if job["state"] != "SUCCEEDED":
            raise SystemExit(f"train job {job['id']} ended {job['state']}: {job['error']}")
        jobs.append(job_figures(job))
    return {"client_wall_s": time.time() - called, "trials": jobs, "load_after": os.getloadavg()[0]}


async def pruning(url: str, steps: int, trials: int, seed: int) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        pruned = await run_sweep(client, steps, SPACE, trials, "median", seed)
        unpruned = await run_sweep(client, steps, SPACE, trials, "none", seed)
    return {"median": pruned, "none": unpruned,
            "steps_saved": 1 - pruned["total_steps"] / unpruned["total_steps"],
            "steps_ran_saved": 1 - pruned["steps_ran"] / unpruned["steps_ran"],
            "objective_gap": pruned["best_value"] / unpruned["best_value"] - 1,
            "wall_ratio": pruned["client_wall_s"] / unpruned["client_wall_s"]}  # fmt: skip


async def overhead(url: str, steps: int, trials: int, rounds: int, seed: int) -> dict[str, Any]:
    from mcp import Client

    sweeps, standalone = [], []
    async with Client(f"{url}/mcp/") as client:
        for round_ in range(rounds):
            order = ("sweep", "standalone") if round_ % 2 == 0 else ("standalone", "sweep")
            for side in order:
                if side == "sweep":
                    sweeps.append(await run_sweep(client, steps, ONE_POINT, trials, "none", seed))
                else:
                    standalone.append(await run_standalone(client, steps, trials))
    return compare(sweeps, standalone)


def compare(sweeps: list[dict[str, Any]], standalone: list[dict[str, Any]]) -> dict[str, Any]:
    """Means as asked for, and what a busy machine moves less: medians, and each round's own ratio
    (its two sides ran back to back) with the median of those, as bench-load reports."""

    def per_trial(runs: list[dict[str, Any]]) -> dict[str, Any]:
        jobs = [j for run in runs for j in run["trials"]]
        return {"trials": len(jobs), "mean_job_wall_s": statistics.mean(j["wall_s"] for j in jobs),
                "median_job_wall_s": statistics.median(j["wall_s"] for j in jobs),
                "mean_queued_s": statistics.mean(j["queued_s"] for j in jobs),
                "total_wall_per_trial_s": sum(r["client_wall_s"] for r in runs) / len(jobs),
                "rounds_wall_per_trial_s": [r["client_wall_s"] / len(r["trials"]) for r in runs],
                "rounds_load_after": [r["load_after"] for r in runs]}  # fmt: skip

    inside, alone = per_trial(sweeps), per_trial(standalone)
    rounds = [s / a for s, a in zip(inside["rounds_wall_per_trial_s"], alone["rounds_wall_per_trial_s"], strict=True)]
    return {"sweep": inside, "standalone": alone, "sweep_runs": sweeps, "standalone_runs": standalone,
            "job_wall_ratio": inside["mean_job_wall_s"] / alone["mean_job_wall_s"],
            "median_job_wall_ratio": inside["median_job_wall_s"] / alone["median_job_wall_s"],
            "total_wall_ratio": inside["total_wall_per_trial_s"] / alone["total_wall_per_trial_s"],
            "rounds_wall_ratio": rounds, "median_round_wall_ratio": statistics.median(rounds)}  # fmt: skip


def table(report: dict[str, Any]) -> str:
    a, b = report["pruning"], report["overhead"]
    med, none = a["median"], a["none"]
    ok = {True: "met", False: "**not met**"}
    rows = [
        f"| (a) {report['trials']} trials × {report['steps']} steps, tpe seed {report['seed']} | median pruner | pruner none | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| training steps, all trials (SweepResult.total_steps) | {med['total_steps']} | {none['total_steps']} | "
        f"**{-a['steps_saved']:+.1%}** | ≤ −{GOAL_STEPS_SAVED:.0%}: {ok[a['steps_saved'] >= GOAL_STEPS_SAVED]} |",
        f"| steps the trials' jobs ran (a pruned job runs on until canceled) | {med['steps_ran']} | {none['steps_ran']} | "
        f"{-a['steps_ran_saved']:+.1%} | |",
        f"| best eval_loss | {med['best_value']:.4f} | {none['best_value']:.4f} | **{a['objective_gap']:+.2%}** | "
        f"≤ +{GOAL_OBJECTIVE:.0%}: {ok[a['objective_gap'] <= GOAL_OBJECTIVE]} |",
        f"| best trial's parameters | {_params(med['best_params'])} | {_params(none['best_params'])} | | |",
        f"| trials complete / pruned / failed | {med['complete']} / {med['pruned']} / {med['failed']} | "
        f"{none['complete']} / {none['pruned']} / {none['failed']} | | |",
        f"| sweep wall time (client) | {med['client_wall_s']:.1f} s | {none['client_wall_s']:.1f} s | {a['wall_ratio']:.2f}× | |",
        f"| 1-minute load average as the sweep ended (2 cores) | {med['load_after']:.1f} | {none['load_after']:.1f} | | |",
        "",
        f"| (b) {b['sweep']['trials']} trials a side, {report['rounds']} alternating rounds, {report['steps']} steps | "
        "one-point sweep | train_start jobs | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| mean wall time of a trial's job (started_at..finished_at) | {b['sweep']['mean_job_wall_s']:.2f} s | "
        f"{b['standalone']['mean_job_wall_s']:.2f} s | **{b['job_wall_ratio']:.3f}×** | "
        f"≤ {GOAL_OVERHEAD}×: {ok[b['job_wall_ratio'] <= GOAL_OVERHEAD]} |",
        f"| median wall time of a trial's job | {b['sweep']['median_job_wall_s']:.2f} s | "
        f"{b['standalone']['median_job_wall_s']:.2f} s | {b['median_job_wall_ratio']:.3f}× | |",
        f"| side's wall time / trials (first call to last job ended) | {b['sweep']['total_wall_per_trial_s']:.2f} s | "
        f"{b['standalone']['total_wall_per_trial_s']:.2f} s | **{b['total_wall_ratio']:.3f}×** | "
        f"≤ {GOAL_OVERHEAD}×: {ok[b['total_wall_ratio'] <= GOAL_OVERHEAD]} |",
        f"| per round, wall / trials | {seconds(b['sweep']['rounds_wall_per_trial_s'])} | "
        f"{seconds(b['standalone']['rounds_wall_per_trial_s'])} | | |",
        f"| per round, ratio; their median | {ratios(b['rounds_wall_ratio'])} | | "
        f"**{b['median_round_wall_ratio']:.3f}×** | ≤ {GOAL_OVERHEAD}×: {ok[b['median_round_wall_ratio'] <= GOAL_OVERHEAD]} |",
        f"| 1-minute load average as each round ended (2 cores) | {loads(b['sweep']['rounds_load_after'])} | "
        f"{loads(b['standalone']['rounds_load_after'])} | | |",
        f"| mean time queued (created_at..started_at) | {b['sweep']['mean_queued_s']:.2f} s | "
        f"{b['standalone']['mean_queued_s']:.2f} s | | |",
    ]  # fmt: skip
    return "\n".join(rows)


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.2e}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items())


def main(folder: Path, trials: int, steps: int, overhead_trials: int, rounds: int, seed: int) -> dict[str, Any]:
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.server_process import ServerProcess

    home = folder / f"sweep-{int(time.time())}"
    build_tiny_model(home / "models" / "tiny")
    greetings(home / "greet.jsonl", 600)
    report: dict[str, Any] = {"trials": trials, "steps": steps, "overhead_trials": overhead_trials, "rounds": rounds,
                              "seed": seed, "space": SPACE}  # fmt: skip
    with ServerProcess(home) as live:
        asyncio.run(_prepare(live.url))
        report["pruning"] = asyncio.run(pruning(live.url, steps, trials, seed))
        report["overhead"] = asyncio.run(overhead(live.url, steps, overhead_trials, rounds, seed))
    report["table"] = table(report)
    (folder / "report-sweep.json").write_text(json.dumps(report, indent=2))
    return report


async def _prepare(url: str) -> None:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        await prepare(client)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=12, help="(a) trials in each sweep")
    parser.add_argument("--steps", type=int, default=50, help="max_steps of every trial; eval loss every fifth of it")
    parser.add_argument("--overhead-trials", type=int, default=3, help="(b) trials a side in each round")
    parser.add_argument("--rounds", type=int, default=4, help="(b) rounds, alternating which side goes first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    print(main(args.folder.resolve(), args.trials, args.steps, args.overhead_trials, args.rounds, args.seed)["table"])
