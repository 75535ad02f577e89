"""`make demo`: start a real `forge-mcp serve`, talk to it as an agent would — through the
official MCP client and the A2A client — print what came back, and stop it cleanly.

It benchmarks the machine, imports, inspects and prepares a messy CSV of support chats,
builds the tiny offline model and fine-tunes it on those chats (train_plan → train_start →
progress → a held-out loss below the base model's). Later issues grow this into the whole
lifecycle (… → evaluate → export → serve).
The workspace is left in ./forge-workspace for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from forge_mcp.server_process import ServerProcess

SUPPORT_TOPICS = ("billing", "shipping", "refund", "account")


def write_support_chats(path: Path, rows: int = 240) -> None:
    """A messy CSV of support chats, as an export from a help desk would be: stray
    whitespace, a duplicate, customer PII, a line with a broken quote, an empty chat."""
    lines = ["ticket,topic,created,messages"]

    def add(ticket: int, topic: str, chat: list[dict[str, str]]) -> None:
        lines.append(f"{ticket},{topic},2026-{1 + ticket % 12:02d}-{1 + ticket % 28:02d}," + '"' + json.dumps(chat).replace('"', '""') + '"')

    for i in range(rows):
        topic = SUPPORT_TOPICS[i % len(SUPPORT_TOPICS)]
        add(i, topic, [
            {"role": "user", "content": f"  Hi, ticket {i}: I have a {topic} problem with order {1000 + i * 37}.  "},
            {"role": "assistant", "content": f"Thanks! The {topic} problem on order {1000 + i * 37} is solved; "
                                             f"you will get an email confirmation for case {i * 7919}."},
        ])  # fmt: skip
    lines.append(lines[3].replace("1,", f"{rows},", 1))  # the same chat exported twice
    add(rows + 1, "billing", [{"role": "user", "content": "My card 4111 1111 1111 1111 was charged twice, mail me at kim@example.com"},
                              {"role": "assistant", "content": "Refunded. Please never send card numbers by chat."}])  # fmt: skip
    add(rows + 2, "refund", [])
    lines.append(f"{rows + 3},refund,2026-01-01,\"broken")
    path.write_text("\n".join(lines) + "\n")


async def import_and_prepare(client: Any, workspace: Path) -> dict[str, Any]:
    write_support_chats(workspace / "support-chats.csv")
    imported = await client.call_tool("dataset_import", {"path": "support-chats.csv", "name": "support-chats"})
    if imported.is_error:
        raise SystemExit(f"dataset_import failed: {imported.content}")
    inspected = await client.call_tool("dataset_inspect", {"dataset": "support-chats", "samples": 0})
    started = await client.call_tool(
        "dataset_prepare",
        {"dataset": "support-chats", "split_method": "stratified", "split_column": "topic", "test_fraction": 0.1},
    )
    waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
    job = waited.structured_content["job"]
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"dataset_prepare ended {job['state']}: {job['error']}")
    return {"import": imported.structured_content, "inspect": inspected.structured_content, "prepared": job["result"]}


async def via_mcp(url: str, workspace: Path) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        tools = await client.list_tools()
        overview = await client.call_tool("forge_overview", {})
        status = await client.call_tool("system_status", {"sample_seconds": 0.5})
        resource = await client.read_resource("forge://overview")
        if overview.is_error or status.is_error:
            raise SystemExit(f"MCP call failed: {overview.content or status.content}")
        benchmark = await run_benchmark_job(client)
        data = await import_and_prepare(client, workspace)
        training = await fine_tune(client, workspace)
    return {
        "data": data,
        "training": training,
        "tools": [t.name for t in tools.tools],
        "overview": overview.structured_content,
        "status": status.structured_content,
        "resource_bytes": len(resource.contents[0].text),  # type: ignore[union-attr]
        "benchmark": benchmark,
    }


async def fine_tune(client: Any, workspace: Path) -> dict[str, Any]:
    """The tiny model (built offline by `forge-mcp dev tiny-model`) learns the support chats:
    plan first, then start, then follow the job's progress."""
    model = workspace / "models" / "tiny"
    if not (model / "config.json").is_file():
        print("building the tiny model (forge-mcp dev tiny-model) …", flush=True)
        subprocess.run([sys.executable, "-m", "forge_mcp", "dev", "tiny-model", str(model)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    request = {"recipe": "sft-lora-tiny",
               "spec": {"base_model": "models/tiny", "dataset": "support-chats", "eval_split": "test", "max_steps": 150}}  # fmt: skip
    plan = await client.call_tool("train_plan", request)
    if plan.is_error:
        raise SystemExit(f"train_plan failed: {plan.content}")
    started = await client.call_tool("train_start", request)
    if started.is_error:
        raise SystemExit(f"train_start failed: {started.content}")
    print(f"train_start started job {started.structured_content['job_id']}", flush=True)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        print(f"  progress {message}", flush=True)

    waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 600},
                                    progress_callback=on_progress)  # fmt: skip
    job = waited.structured_content["job"]
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"training ended {job['state']}: {job['error']}")
    return {"plan": plan.structured_content, "job": job}


async def run_benchmark_job(client: Any) -> dict[str, Any]:
    """system_benchmark returns a job at once; job_wait streams its progress as MCP notifications."""
    started = await client.call_tool("system_benchmark", {"seconds_per_test": 1.0})
    if started.is_error:
        raise SystemExit(f"system_benchmark failed: {started.content}")
    job_id = started.structured_content["job_id"]
    print(f"system_benchmark started as job {job_id} (state {started.structured_content['state']})", flush=True)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        share = f"{done:g}/{total:g}" if total else f"{done:g}"
        print(f"  progress [{share}] {message}", flush=True)

    waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 300}, progress_callback=on_progress)
    job = waited.structured_content["job"]
    if job["state"] != "SUCCEEDED":
        raise SystemExit(f"benchmark job ended {job['state']}: {job['error']}")
    metrics = await client.call_tool("job_metrics", {"job_id": job_id, "chart": True})
    charts = [c for c in metrics.content if c.type == "image"]
    return {"job": job, "series": [s["name"] for s in metrics.structured_content["series"]], "chart_images": len(charts)}


async def via_a2a(url: str) -> dict[str, Any]:
    from a2a.client import ClientConfig, create_client
    from a2a.helpers import get_data_parts, new_data_part, new_message
    from a2a.types import Role, SendMessageRequest, TaskState

    client = await create_client(url, client_config=ClientConfig(streaming=False))
    results: dict[str, Any] = {"skills": [s.id for s in client._card.skills]}  # noqa: SLF001 - card is resolved by the factory
    try:
        for tool, arguments in (("forge_overview", {}), ("system_status", {"sample_seconds": 0.5})):
            message = new_message([new_data_part({"tool": tool, "arguments": arguments})], role=Role.ROLE_USER)
            async for event in client.send_message(SendMessageRequest(message=message)):
                task = event.task
                if task.status.state != TaskState.TASK_STATE_COMPLETED:
                    raise SystemExit(f"A2A task for {tool} ended in state {TaskState.Name(task.status.state)}")
                results[tool] = get_data_parts(task.artifacts[0].parts)[0]
                results[f"{tool}_task"] = task.id
    finally:
        await client.close()
    return results


def report(mcp: dict[str, Any], a2a: dict[str, Any]) -> str:
    ov = mcp["overview"]
    hw = ov["hardware"]
    st = mcp["status"]
    gpus = ", ".join(f"{g['name']} ({g['memory_total_gib']} GiB)" for g in hw["gpus"]) or f"none — {hw['gpu_note']}"
    extras = ", ".join(e["name"] for e in ov["extras"] if e["installed"]) or "none"
    a2a_status = a2a["system_status"]
    lines = [
        "",
        "forge-mcp demo",
        "==============",
        f"server      forge-mcp {ov['version']}, auth {'on' if ov['auth'] else 'off (loopback)'}",
        f"workspace   {ov['workspace']['root']}",
        "",
        "Through MCP (official client, Streamable HTTP):",
        f"  tools      {', '.join(mcp['tools'])}",
        f"  hardware   {hw['cpu']['logical_cores']} cores ({hw['cpu']['model']}), {hw['memory_total_gib']} GiB RAM, "
        f"{hw['disk_free_gib']} GiB free disk",
        f"  GPUs       {gpus}",
        f"  MLX        {'can run' if hw['mlx']['can_run'] else 'not installed'}",
        f"  extras     {extras}",
        f"  status     CPU {st['cpu_percent']}%, RAM {st['memory_used_gib']}/{st['memory_total_gib']} GiB "
        f"({st['memory_percent']}%), disk {st['disk_percent']}% used",
        f"  resource   forge://overview read ({mcp['resource_bytes']} bytes)",
        "",
        *benchmark_lines(mcp["benchmark"]),
        "",
        *data_lines(mcp["data"]),
        "",
        *training_lines(mcp["training"]),
        "",
        "Through A2A (a2a-sdk client, JSON-RPC):",
        f"  skills     {', '.join(a2a['skills'])}",
        f"  overview   task {a2a['forge_overview_task']} completed: version {a2a['forge_overview']['version']}, "
        f"{len(a2a['forge_overview']['toolsets'])} toolset(s)",
        f"  status     task {a2a['system_status_task']} completed: CPU {a2a_status['cpu_percent']}%, "
        f"RAM {a2a_status['memory_percent']}%",
    ]
    return "\n".join(lines)


def data_lines(data: dict[str, Any]) -> list[str]:
    imported, inspected, prepared = data["import"], data["inspect"], data["prepared"]
    source = imported["dataset"]
    result = prepared["dataset"]
    steps = ", ".join(f"{s['step']} {s['rows_in']}→{s['rows_out']}" for s in prepared["steps"])
    return [
        "Data (a messy CSV of support chats):",
        f"  import     {source['id']}: {source['rows']} rows, kind {source['kind']} "
        f"({imported['detection']['confidence']:.0%} of rows fit), {imported['bad_lines']} unreadable line(s) skipped",
        f"  inspect    {inspected['invalid_rows']} invalid row(s), {inspected['duplicates']['exact_rows']} exact and "
        f"{inspected['duplicates']['near_rows']} near duplicate(s), PII {inspected['pii']}",
        f"  prepare    {result['id']} ← {result['parent_id']}: {steps}",
        f"  splits     {prepared['splits']}, PII redacted {prepared['pii']}",
        f"  fingerprint {result['fingerprint']}",
    ]


def training_lines(training: dict[str, Any]) -> list[str]:
    plan, job = training["plan"], training["job"]
    result = job["result"]
    base, tuned = result["base_eval_loss"], result["final_eval_loss"]
    return [
        f"Training (tiny model, {plan['base']['parameters']:,} parameters, SFT LoRA on {plan['dataset_id']}):",
        f"  plan       backend {plan['backend']} on {plan['device']}, {plan['trainable_parameters']:,} trainable parameters, "
        f"{plan['steps']} steps, ~{plan['memory']['total_gib']} GiB and "
        + (f"~{plan['estimated_seconds']} s estimated" if plan["estimated_seconds"] is not None else "no time estimate"),
        f"  job        {job['id']}: {result['steps']} steps in {result['train_runtime_s']} s, "
        f"{result['tokens_per_second']} tokens/s, train loss {result['first_loss']:.3f} → {result['final_loss']:.3f}",
        f"  held out   eval loss {base:.3f} (base) → {tuned:.3f} (fine-tuned); perplexity {math.exp(base):.1f} → {math.exp(tuned):.1f}",
        f"  adapter    {result['adapter']} (dataset {result['dataset_fingerprint'][:16]}…)",
    ]


def benchmark_lines(benchmark: dict[str, Any]) -> list[str]:
    job = benchmark["job"]
    result = job["result"]
    lines = [f"system_benchmark (job {job['id']}, {job['finished_at'] - job['started_at']:.1f}s, attempt {job['attempt']}):"]
    for m in result["matmul"]:
        speed = f"{m['gflops']} GFLOP/s ({m['backend']}, {m['dtype']}, {m['matrix_size']}²)" if m["available"] else m["note"]
        lines.append(f"  matmul     {m['device']}: {speed}")
    lines += [
        f"  memory     {result['memory_bandwidth_gbs']} GB/s copy bandwidth",
        f"  disk       {result['disk_write_mbs']} MB/s sequential write (fsync) in the workspace",
        f"  metrics    {', '.join(benchmark['series'])}; chart returned as {benchmark['chart_images']} PNG image",
    ]
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("forge-workspace"))
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    args = parser.parse_args()
    home = args.home.resolve()
    server = ServerProcess(home, log_path=home / "demo-server.log")
    home.mkdir(parents=True, exist_ok=True)
    print(f"starting forge-mcp serve (workspace {home}) …", flush=True)
    with server:
        print(f"listening on {server.url}", flush=True)
        mcp = asyncio.run(via_mcp(server.url, home))
        a2a = asyncio.run(via_a2a(server.url))
        print(report(mcp, a2a))
        if args.json:
            print(json.dumps({"mcp": mcp, "a2a": a2a}, indent=2))
    code = server.process.returncode if server.process else 0
    print(f"\nserver stopped (exit code {code}); log in {server.log_path}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
