"""The workflow benchmark, side by side in one run, through one live server:
(a) parallel branches: a workflow of two independent branches of equal length (each a chain of
    dataset_prepare steps on its own imported copy of a synthetic chat dataset: real CPU work,
    in job processes, single-threaded as the dataset stays under the size at which prepare
    starts a process pool) against the same steps, same arguments, chained one after another
    (each step `needs` the one before). The server runs two CPU jobs at once, so the parallel
    one should take about half as long. Reported: the workflow job's wall time (started_at..
    finished_at) and the client's (workflow_run to job_wait's answer), each round's ratio and
    their median, and from workflow_status how long the two branches overlapped;
(b) the engine's overhead per step: a chain of trivial immediate steps (job_list, limit 1, each
    needing the one before, so one at a time): the workflow job's wall time per step, against
    the same tool calls made by the MCP client one after another.
Both alternate their sides in rounds (ABBA...), so a busy machine weighs on both; each round's
ratio and their median are reported, as one slow round moves a mean a lot.
Everything goes through `forge-mcp serve` and the MCP client, as a user's agent would.

    make bench-workflow
    python -m benchmarks.workflow --rows 19000 --turns 12 --branch-steps 1 --steps 50 --rounds 4
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

BRANCHES = ("a", "b")
PREPARE = {"dedup": "near", "pii": "redact", "test_fraction": 0.1}  # dataset_prepare's defaults, spelled out
GOAL_PARALLEL = 0.6  # two branches at once take at most this share of the same steps chained
GOAL_STEP_S = 0.050  # a trivial step costs a workflow at most this much
# The machine's own figure for (a): a pure-Python loop (about a second) alone, then two at once.
SPIN = "import time\nt = time.perf_counter()\nx = 0\nfor i in range(10_000_000):\n    x += i * i\nprint(time.perf_counter() - t)"


def chats(path: Path, rows: int, turns: int, seed: int) -> None:
    """`rows` chats of `turns` user/assistant exchanges each: synthetic_chats' rows (planted
    duplicates, personal data, decoys) joined `turns` at a time, so a row's work grows with
    `turns` while the row count stays under prepare's process-pool threshold."""
    from benchmarks.synthetic_chats import generate

    single = path.with_name(path.stem + "-single.jsonl")
    generate(single, rows * turns, seed)
    with single.open() as source, path.open("w") as out:
        lines = source.readlines()
        for start in range(0, len(lines), turns):
            messages = [m for line in lines[start : start + turns] for m in json.loads(line)["messages"]]
            out.write(json.dumps({"messages": messages}) + "\n")
    single.unlink()


def machine_ratio() -> float:
    """Two single-threaded processes at once against one alone, without forge: the best (a) can do
    here. 0.5 on two free cores; more where the cores are busy or share a physical core."""
    import subprocess
    import sys

    def spin(count: int) -> float:
        started = time.perf_counter()
        children = [subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE) for _ in range(count)]
        for child in children:
            child.communicate()
        return time.perf_counter() - started

    alone = spin(1)
    return spin(2) / (2 * alone)


def document(name: str, branch_steps: int, chained: bool) -> dict[str, Any]:
    """Branch a's steps a1..aN, then b's; in a branch each needs the one before. Chained: b1 also
    needs aN, so every step waits for the previous one. Each prepares its branch's v1 again."""
    steps: dict[str, Any] = {}
    previous: str | None = None
    for branch in BRANCHES:
        if not chained:
            previous = None
        for i in range(1, branch_steps + 1):
            step = f"{branch}{i}"
            steps[step] = {"tool": "dataset_prepare", "arguments": {"dataset": f"{branch}@v1", **PREPARE},
                           "needs": [previous] if previous else []}  # fmt: skip
            previous = step
    return {"name": name, "steps": steps}


def trivial_chain(steps: int) -> dict[str, Any]:
    chain = {f"s{i}": {"tool": "job_list", "arguments": {"limit": 1}, "needs": [f"s{i - 1}"] if i > 1 else []}
             for i in range(1, steps + 1)}  # fmt: skip
    return {"name": "trivial-chain", "steps": chain}


async def run_workflow(client: Any, doc: dict[str, Any]) -> dict[str, Any]:
    """Runs a document inline and waits for it: its job, the client's wall time and workflow_status."""
    called = time.time()
    handle = await call(client, "workflow_run", {"document": doc})
    job = await wait(client, handle["job_id"])
    ended = time.time()
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"workflow {doc['name']} ({job['id']}) ended {job['state']}: {job['error']}")
    status = await call(client, "workflow_status", {"run_id": job["id"], "chart": False})
    steps = status["steps"]
    for step in steps:  # a step that started a job: how long from the step's start to the job's, and end to end
        if step["job_id"]:
            child = await call(client, "job_status", {"job_id": step["job_id"]})
            step["job_lead_s"] = child["started_at"] - step["started_at"]
            step["job_tail_s"] = step["finished_at"] - child["finished_at"]
    return {"run_id": job["id"], "job_wall_s": job["finished_at"] - job["started_at"],
            "queued_s": job["started_at"] - job["created_at"], "client_wall_s": ended - called,
            # the run's own time around its steps: its start to the first step's, the last step's end to its end
            "lead_s": min(s["started_at"] for s in steps) - job["started_at"],
            "tail_s": job["finished_at"] - max(s["finished_at"] for s in steps),
            "steps": steps, "load_after": os.getloadavg()[0]}  # fmt: skip


def branch_figures(run: dict[str, Any]) -> dict[str, Any]:
    """Each branch's span (first step started to last ended) and how long the two overlapped."""
    spans = {}
    for branch in BRANCHES:
        steps = [s for s in run["steps"] if s["name"].startswith(branch)]
        spans[branch] = (min(s["started_at"] for s in steps), max(s["finished_at"] for s in steps))
    (a0, a1), (b0, b1) = spans["a"], spans["b"]
    overlap = max(0.0, min(a1, b1) - max(a0, b0))
    return {"spans": spans, "overlap_s": overlap, "overlap_share": overlap / max(a1 - a0, b1 - b0),
            "step_s": stepseconds(run)}  # fmt: skip


async def parallel_vs_chained(url: str, branch_steps: int, rounds: int) -> dict[str, Any]:
    from mcp import Client

    runs: dict[str, list[dict[str, Any]]] = {"parallel": [], "chained": []}
    machine = [machine_ratio()]
    async with Client(f"{url}/mcp/") as client:
        for round_ in range(rounds):
            order = ("parallel", "chained") if round_ % 2 == 0 else ("chained", "parallel")
            for side in order:
                run = await run_workflow(client, document(f"bench-{side}", branch_steps, side == "chained"))
                runs[side].append({**run, **branch_figures(run)})
    machine.append(machine_ratio())
    parallel, chained = runs["parallel"], runs["chained"]
    rounds_ratio = [p["job_wall_s"] / c["job_wall_s"] for p, c in zip(parallel, chained, strict=True)]
    return {"parallel": parallel, "chained": chained, "rounds_ratio": rounds_ratio, "machine_ratio": machine,
            "median_round_ratio": statistics.median(rounds_ratio),
            "total_ratio": sum(p["job_wall_s"] for p in parallel) / sum(c["job_wall_s"] for c in chained),
            "client_ratio": sum(p["client_wall_s"] for p in parallel) / sum(c["client_wall_s"] for c in chained),
            "mean_step_s": {side: statistics.mean(s for r in runs[side] for s in r["step_s"]) for side in runs},
            "median_job_lead_s": statistics.median(s["job_lead_s"] for r in parallel + chained for s in r["steps"]),
            "median_job_tail_s": statistics.median(s["job_tail_s"] for r in parallel + chained for s in r["steps"])}  # fmt: skip


async def direct_calls(client: Any, steps: int) -> dict[str, Any]:
    called = time.time()
    for _ in range(steps):
        await call(client, "job_list", {"limit": 1})
    return {"client_wall_s": time.time() - called, "load_after": os.getloadavg()[0]}


def stepseconds(run: dict[str, Any]) -> list[float]:
    """Each step's time, started to ended (workflow_status's `seconds` is rounded to 10 ms)."""
    return [s["finished_at"] - s["started_at"] for s in run["steps"]]


def gaps(run: dict[str, Any]) -> list[float]:
    """From one step's end to the next one's start, along the chain."""
    steps = run["steps"]
    return [b["started_at"] - a["finished_at"] for a, b in zip(steps, steps[1:], strict=False)]


async def overhead(url: str, steps: int, rounds: int) -> dict[str, Any]:
    from mcp import Client

    runs: dict[str, list[dict[str, Any]]] = {"workflow": [], "direct": []}
    async with Client(f"{url}/mcp/") as client:
        await direct_calls(client, 3)  # warm: the first calls of a session pay for imports and caches
        for round_ in range(rounds):
            order = ("workflow", "direct") if round_ % 2 == 0 else ("direct", "workflow")
            for side in order:
                if side == "workflow":
                    runs[side].append(await run_workflow(client, trivial_chain(steps)))
                else:
                    runs[side].append(await direct_calls(client, steps))
    workflow, direct = runs["workflow"], runs["direct"]
    per_step = [w["job_wall_s"] / steps for w in workflow]
    direct_step = [d["client_wall_s"] / steps for d in direct]
    all_gaps = [g for w in workflow for g in gaps(w)]
    return {"workflow": workflow, "direct": direct, "rounds_step_s": per_step, "rounds_direct_step_s": direct_step,
            "median_step_s": statistics.median(per_step), "median_direct_step_s": statistics.median(direct_step),
            "rounds_client_step_s": [w["client_wall_s"] / steps for w in workflow],
            "median_step_seconds": statistics.median(s for w in workflow for s in stepseconds(w)),
            "median_lead_s": statistics.median(w["lead_s"] for w in workflow),
            "median_tail_s": statistics.median(w["tail_s"] for w in workflow),
            "median_gap_s": statistics.median(all_gaps) if all_gaps else 0.0,
            "rounds_ratio": [w / d for w, d in zip(per_step, direct_step, strict=True)]}  # fmt: skip


def table(report: dict[str, Any]) -> str:
    a, b = report["parallel"], report["overhead"]
    ok = {True: "met", False: "**not met**"}
    par, chn = a["parallel"], a["chained"]
    n = report["branch_steps"]
    what = f"{n} dataset_prepare step{'s' if n > 1 else ''}"
    overlaps = ", ".join(f"{r['overlap_s']:.1f} s ({r['overlap_share']:.0%})" for r in par)
    chained_overlaps = ", ".join(f"{r['overlap_s']:.1f} s" for r in chn)
    met_a = a["median_round_ratio"] <= GOAL_PARALLEL
    met_b = b["median_step_s"] < GOAL_STEP_S
    rows = [
        f"| (a) 2 branches × {what}, {report['rows']} rows × {report['turns']} turns each, {report['rounds']} "
        "alternating rounds | parallel branches | chained | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| workflow job's wall time (started_at..finished_at), per round | {seconds([r['job_wall_s'] for r in par])} | "
        f"{seconds([r['job_wall_s'] for r in chn])} | {ratios(a['rounds_ratio'])} | |",
        f"| per round, ratio; their median | | | **{a['median_round_ratio']:.3f}×** | "
        f"≤ {GOAL_PARALLEL}×: {ok[met_a]} |",
        f"| all rounds' job wall time together | {sum(r['job_wall_s'] for r in par):.1f} s | "
        f"{sum(r['job_wall_s'] for r in chn):.1f} s | {a['total_ratio']:.3f}× | |",
        f"| client's wall time (workflow_run to job_wait's answer), per round | "
        f"{seconds([r['client_wall_s'] for r in par])} | {seconds([r['client_wall_s'] for r in chn])} | "
        f"{a['client_ratio']:.3f}× | |",
        f"| mean step's wall time (started to ended, its job's spawn included) | {a['mean_step_s']['parallel']:.2f} s | "
        f"{a['mean_step_s']['chained']:.2f} s | {a['mean_step_s']['parallel'] / a['mean_step_s']['chained']:.3f}× | |",
        f"| run's start to its first step / its last step's end to its end, per round | "
        f"{_pairs([(r['lead_s'], r['tail_s']) for r in par])} | {_pairs([(r['lead_s'], r['tail_s']) for r in chn])} | | |",
        f"| median step's start to its job's start / its job's end to the step's end (both sides) | "
        f"{a['median_job_lead_s']:.2f} / {a['median_job_tail_s']:.2f} s | | | |",
        f"| branches a and b overlapped (workflow_status), per round | {overlaps} | {chained_overlaps} | | "
        f"parallel overlaps: {ok[all(r['overlap_share'] > 0.5 for r in par)]} |",
        f"| the machine alone: two busy Python processes at once / one after another, before and after (a) | | | "
        f"{ratios(a['machine_ratio'])} | the best (a) can get here |",
        f"| 1-minute load average as each round ended ({os.cpu_count()} cores) | "
        f"{loads([r['load_after'] for r in par])} | {loads([r['load_after'] for r in chn])} | | |",
        "",
        f"| (b) a chain of {report['steps']} job_list steps (limit 1), {report['rounds']} alternating rounds | "
        "workflow | direct MCP calls | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| wall time per step, per round (workflow: job's started_at..finished_at; direct: client) | "
        f"{_ms(b['rounds_step_s'])} | {_ms(b['rounds_direct_step_s'])} | {ratios(b['rounds_ratio'])} | |",
        f"| median of the rounds, per step | **{b['median_step_s'] * 1000:.1f} ms** | "
        f"{b['median_direct_step_s'] * 1000:.1f} ms | {b['median_step_s'] / b['median_direct_step_s']:.2f}× | "
        f"< {GOAL_STEP_S * 1000:.0f} ms: {ok[met_b]} |",
        f"| workflow's client wall time per step (validation, submit and job_wait included), per round | "
        f"{_ms(b['rounds_client_step_s'])} | | | |",
        f"| median step's own time (started to ended) / gap from a step's end to the next's start | "
        f"{b['median_step_seconds'] * 1000:.1f} / {b['median_gap_s'] * 1000:.1f} ms | | | |",
        f"| median run's start to its first step / its last step's end to its end | "
        f"{b['median_lead_s'] * 1000:.1f} / {b['median_tail_s'] * 1000:.1f} ms | | | |",
        f"| 1-minute load average as each round ended ({os.cpu_count()} cores) | "
        f"{loads([r['load_after'] for r in b['workflow']])} | {loads([r['load_after'] for r in b['direct']])} | | |",
    ]  # fmt: skip
    return "\n".join(rows)


def _pairs(values: list[tuple[float, float]]) -> str:
    return ", ".join(f"{a:.2f} / {b:.2f}" for a, b in values) + " s"


def _ms(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.1f}" for v in values) + " ms"


def main(folder: Path, rows: int, turns: int, branch_steps: int, steps: int, rounds: int) -> dict[str, Any]:
    from forge_mcp.datasets.prepare import PARALLEL_MIN_ROWS
    from forge_mcp.server_process import ServerProcess

    if rows >= PARALLEL_MIN_ROWS:
        raise SystemExit(f"--rows {rows}: at {PARALLEL_MIN_ROWS} rows or more prepare runs a process pool on every "
                         "core, and two branches could not run side by side; raise --turns instead")  # fmt: skip
    home = folder / f"workflow-{int(time.time())}"
    home.mkdir(parents=True)
    for seed, branch in enumerate(BRANCHES, start=1):  # the same size, different rows
        chats(home / f"{branch}.jsonl", rows, turns, seed)
    report: dict[str, Any] = {"rows": rows, "turns": turns, "branch_steps": branch_steps, "steps": steps,
                              "rounds": rounds, "home": str(home)}  # fmt: skip
    with ServerProcess(home) as live:
        asyncio.run(_import(live.url))
        report["parallel"] = asyncio.run(parallel_vs_chained(live.url, branch_steps, rounds))
        report["overhead"] = asyncio.run(overhead(live.url, steps, rounds))
    report["table"] = table(report)
    (folder / "report-workflow.json").write_text(json.dumps(report, indent=2))
    return report


async def _import(url: str) -> None:
    """Each branch's own dataset, a@v1 and b@v1, outside anything timed."""
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        for branch in BRANCHES:
            imported = await call(client, "dataset_import", {"path": f"{branch}.jsonl", "name": branch})
            if imported["dataset"]["id"] != f"{branch}@v1":
                raise SystemExit(f"expected {branch}@v1, the import made {imported['dataset']['id']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=19_000, help="(a) chats in each branch's dataset (under 20,000)")
    parser.add_argument("--turns", type=int, default=12, help="(a) user/assistant exchanges a chat: the work per row")
    parser.add_argument("--branch-steps", type=int, default=1, help="(a) dataset_prepare steps in each branch")
    parser.add_argument("--steps", type=int, default=50, help="(b) trivial steps in the chain")
    parser.add_argument("--rounds", type=int, default=4, help="rounds of each part, alternating which side goes first")
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    print(main(args.folder.resolve(), args.rows, args.turns, args.branch_steps, args.steps, args.rounds)["table"])
