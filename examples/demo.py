"""`make demo`: the whole lifecycle, driven the way an agent drives it — through the
official MCP client against a live `forge-mcp serve` (and a glance through A2A) — offline,
on the CPU, in a few minutes.

Run it with `make demo`, or `python examples/demo.py --home DIR --results FILE`.

It benchmarks the machine; imports, inspects and prepares a messy CSV of short-answer
questions; builds the tiny offline model; plans and runs a LoRA fine-tune, following its
progress; registers the adapter and evaluates base and fine-tuned on the held-out split;
promotes it to staging through a gate on exact match; exports a q8_0 GGUF that checks
itself against the source; serves it with llama.cpp behind an OpenAI-compatible endpoint;
asks it one question through litellm; and stops the service. The workspace is left in
./forge-workspace for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from forge_mcp.server_process import ServerProcess


class DemoFailed(Exception):
    """A step came back with an error: the demo stops and says which and why."""


TASK_NAME = "quick-answers"
MODEL_NAME = "quick"
TRAIN_STEPS = 600
# Training threads are fixed so that a run does the same arithmetic on any machine of CI's
# kind. The task is learnt completely well before TRAIN_STEPS, so the gate stands far from
# what a run scores; the base model scores about 0 (it answers in full sentences).
TRAIN_THREADS = "2"
GATE = {"exact_match": ">= 0.6", "rouge_l": ">= 0.8"}
DEMO_QUESTION = "Which colour is the sky?"
WAIT_S = 120  # one job_wait call
JOB_DEADLINE_S = 3600  # one job, however busy the machine
A2A_TIMEOUT_S = 600  # one A2A request: a non-streaming send lasts as long as its task
COLOUR_QUESTIONS = ("What colour is the {}?", "Which colour is the {}?", "Tell me the colour of the {}.",
                    "Name the colour of the {}.")  # fmt: skip
TWICE_QUESTIONS = ("Say the word {} twice.", "Repeat the word {} twice.", "Write {} twice.")


def quick_answer_rows() -> list[tuple[str, str, str]]:
    """(topic, question, answer): questions about the tiny model's world, asked in several
    ways. The base model knows the facts but answers in full sentences ("The sky is
    orange."); the task is a terse keyword format over them ("sky orange", "plum plum"),
    which a LoRA adapter learns completely. The format is made of words the model already
    knows: a new token (a ':' it never saw) would leave its answers right but unsure."""
    from forge_mcp.backends.tiny_model import COLOURS, THINGS, world

    facts = world(0)
    colours = [("colours", q.format(thing), f"{thing} {facts[thing]}") for thing in THINGS for q in COLOUR_QUESTIONS]
    twice = [("words", q.format(word), f"{word} {word}") for word in THINGS + COLOURS for q in TWICE_QUESTIONS]
    return colours + twice


def write_task_csv(path: Path) -> None:
    """The task as a messy CSV, as an export from a labelling tool would be: stray
    whitespace, a row exported twice, a note with PII, an empty chat, a broken line."""
    from forge_mcp.backends.tiny_model import world

    lines = ["id,topic,messages"]

    def add(row_id: int, topic: str, chat: list[dict[str, str]]) -> None:
        lines.append(f"{row_id},{topic}," + '"' + json.dumps(chat).replace('"', '""') + '"')

    rows = quick_answer_rows()
    for i, (topic, question, answer) in enumerate(rows):
        add(i, topic, [{"role": "user", "content": f"  {question} "}, {"role": "assistant", "content": answer}])
    lines.append(lines[5].replace("4,", f"{len(rows)},", 1))  # the same row exported twice
    add(len(rows) + 1, "colours", [{"role": "user", "content": "What colour is the snow? (asked by kim@example.com)"},
                                   {"role": "assistant", "content": f"snow {world(0)['snow']}"}])  # fmt: skip
    add(len(rows) + 2, "colours", [])
    lines.append(f"{len(rows) + 3},colours,\"broken")
    path.write_text("\n".join(lines) + "\n")


async def import_and_prepare(client: Any, workspace: Path) -> dict[str, Any]:
    """Each step names the exact version the step before it returned: in a workspace that
    already holds this task, the newest version of the name is an earlier run's prepared one."""
    write_task_csv(workspace / f"{TASK_NAME}.csv")
    imported = await client.call_tool("dataset_import", {"path": f"{TASK_NAME}.csv", "name": TASK_NAME})
    if imported.is_error:
        raise DemoFailed(f"dataset_import failed: {imported.content[0].text}")
    source = imported.structured_content["dataset"]["id"]
    inspected = await client.call_tool("dataset_inspect", {"dataset": source, "samples": 0})
    started = await client.call_tool(
        "dataset_prepare", {"dataset": source, "split_method": "stratified", "split_column": "topic", "test_fraction": 0.2}
    )
    return {"import": imported.structured_content, "inspect": inspected.structured_content,
            "prepared": (await finished(client, started, "dataset_prepare"))["result"]}  # fmt: skip


async def finished(client: Any, started: Any, what: str, progress: Any = None) -> dict[str, Any]:
    """The result of a job a tool started: job_wait, called again while the job runs (a
    timeout is not an error; a busy machine trains slower), up to JOB_DEADLINE_S in all."""
    if started.is_error:
        raise DemoFailed(f"{what} failed: {started.content[0].text}")
    job_id = started.structured_content["job_id"]
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:
        waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": WAIT_S}, progress_callback=progress)
        if waited.is_error:
            raise DemoFailed(f"job_wait for {what} failed: {waited.content[0].text}")
        job = waited.structured_content["job"]
        if not waited.structured_content["timed_out"] or time.monotonic() > deadline:
            break
    if job["state"] != "SUCCEEDED":
        raise DemoFailed(f"{what} ended {job['state']}: {job['error'] or 'still running after ' + str(JOB_DEADLINE_S) + ' s'}")
    return job


async def via_mcp(url: str, workspace: Path) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        tools = await client.list_tools()
        overview = await client.call_tool("forge_overview", {})
        status = await client.call_tool("system_status", {"sample_seconds": 0.5})
        resource = await client.read_resource("forge://overview")
        if overview.is_error or status.is_error:
            raise DemoFailed(f"MCP call failed: {overview.content or status.content}")
        benchmark = await run_benchmark_job(client)
        data = await import_and_prepare(client, workspace)
        prepared = data["prepared"]["dataset"]["id"]
        training = await fine_tune(client, workspace, prepared)
        evaluation = await evaluate_and_register(client, training["job"]["id"], prepared)
        shipped = await export_and_serve(client, evaluation["version"]["id"])
    return {
        "data": data,
        "training": training,
        "evaluation": evaluation,
        "shipped": shipped,
        "tools": [t.name for t in tools.tools],
        "overview": overview.structured_content,
        "status": status.structured_content,
        "resource_bytes": len(resource.contents[0].text),  # type: ignore[union-attr]
        "benchmark": benchmark,
    }


async def fine_tune(client: Any, workspace: Path, dataset: str) -> dict[str, Any]:
    """The tiny model (built offline by `forge-mcp dev tiny-model`) learns the task: plan
    first, then start, then follow the job's progress."""
    model = workspace / "models" / "tiny"
    if not (model / "config.json").is_file():
        print("building the tiny model (forge-mcp dev tiny-model) …", flush=True)
        subprocess.run([sys.executable, "-m", "forge_mcp", "dev", "tiny-model", str(model)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    request = {"recipe": "sft-lora-tiny",
               "spec": {"base_model": "models/tiny", "dataset": dataset, "eval_split": "test", "max_steps": TRAIN_STEPS}}  # fmt: skip
    plan = await client.call_tool("train_plan", request)
    if plan.is_error:
        raise DemoFailed(f"train_plan failed: {plan.content[0].text}")
    started = await client.call_tool("train_start", request)
    print(f"train_start started job {started.structured_content['job_id']}", flush=True)
    return {"plan": plan.structured_content, "job": await finished(client, started, "training", print_progress)}


async def print_progress(done: float, total: float | None, message: str | None) -> None:
    print(f"  progress {message}", flush=True)


async def evaluate_and_register(client: Any, train_job: str, dataset: str) -> dict[str, Any]:
    """Register the adapter, compare it with its base on the held-out split (model_compare:
    the same rows and greedy decoding for both), and promote it to staging through a gate on
    its scores."""
    registered = await client.call_tool("model_register", {"name": MODEL_NAME, "job_id": train_job})
    if registered.is_error:
        raise DemoFailed(f"model_register failed: {registered.content[0].text}")
    version = registered.structured_content["id"]
    started = await client.call_tool("model_compare", {"dataset": dataset, "model_a": version, "model_b": "base",
                                                       "split": "test", "max_new_tokens": 8})  # fmt: skip
    print(f"model_compare ({version} vs its base) started job {started.structured_content['job_id']}", flush=True)
    comparison = (await finished(client, started, "model_compare"))["result"]
    shown = await client.call_tool("model_compare_report", {"job_id": started.structured_content["job_id"]})
    scores = {"base": comparison["b"], "tuned": comparison["a"]}
    gate = GATE
    promoted = await client.call_tool("model_promote", {"model": version, "stage": "staging", "gate": gate})
    if promoted.is_error:
        raise DemoFailed(f"model_promote failed: {promoted.content[0].text}")
    return {"version": registered.structured_content, "scores": scores, "gate": gate, "promoted": promoted.structured_content,
            "chart": comparison["chart"], "chart_images": sum(1 for c in shown.content if c.type == "image")}  # fmt: skip


async def export_and_serve(client: Any, version: str) -> dict[str, Any]:
    """GGUF q8_0 export (verified against the source), served by llama.cpp behind an
    OpenAI-compatible endpoint, asked one question through litellm, then stopped."""
    started = await client.call_tool("model_export", {"model": version, "format": "gguf", "quantization": "q8_0"})
    print(f"model_export started job {started.structured_content['job_id']}", flush=True)
    exported = (await finished(client, started, "model_export"))["result"]
    served = await client.call_tool("serve_start", {"model": version, "engine": "llama_cpp"})
    if served.is_error:
        raise DemoFailed(f"serve_start failed: {served.content[0].text}")
    service = served.structured_content
    print(f"serving {version} at {service['url']} (job {service['job_id']})", flush=True)
    try:
        question = DEMO_QUESTION
        answer = await asyncio.to_thread(ask_with_litellm, service, question)
    finally:
        stopped = await client.call_tool("serve_stop", {"service": service["job_id"]})
    return {"export": exported, "service": service, "question": question, "answer": answer,
            "stopped": stopped.structured_content, "port_free": port_refuses(service["url"])}  # fmt: skip


def port_refuses(url: str) -> bool:
    """Whether nothing listens on the service's port any more."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(url)
    with socket.socket() as probe:
        return probe.connect_ex((parsed.hostname or "127.0.0.1", parsed.port or 80)) != 0


def ask_with_litellm(service: dict[str, Any], question: str) -> dict[str, Any]:
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm fetches a price list at import otherwise
    import litellm

    started = time.monotonic()
    reply = litellm.completion(model=f"openai/{service['model']}", api_base=service["url"], api_key=service["api_key"],
                               messages=[{"role": "user", "content": question}], max_tokens=16, temperature=0)  # fmt: skip
    return {"text": reply.choices[0].message.content, "seconds": round(time.monotonic() - started, 2),
            "tokens": reply.usage.completion_tokens}  # fmt: skip


async def run_benchmark_job(client: Any) -> dict[str, Any]:
    """system_benchmark returns a job at once; job_wait streams its progress as MCP notifications."""
    started = await client.call_tool("system_benchmark", {"seconds_per_test": 1.0})
    if started.is_error:
        raise DemoFailed(f"system_benchmark failed: {started.content[0].text}")
    job_id = started.structured_content["job_id"]
    print(f"system_benchmark started as job {job_id} (state {started.structured_content['state']})", flush=True)

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        share = f"{done:g}/{total:g}" if total else f"{done:g}"
        print(f"  progress [{share}] {message}", flush=True)

    job = await finished(client, started, "system_benchmark", on_progress)
    metrics = await client.call_tool("job_metrics", {"job_id": job_id, "chart": True})
    charts = [c for c in metrics.content if c.type == "image"]
    return {"job": job, "series": [s["name"] for s in metrics.structured_content["series"]], "chart_images": len(charts)}


async def via_a2a(url: str) -> dict[str, Any]:
    import httpx
    from a2a.client import ClientConfig, create_client
    from a2a.helpers import get_data_parts, new_data_part, new_message
    from a2a.types import Role, SendMessageRequest, TaskState

    # A send without streaming waits for the whole task; the SDK's own HTTP client gives up after 5 s.
    async with httpx.AsyncClient(timeout=A2A_TIMEOUT_S) as http:
        client = await create_client(url, client_config=ClientConfig(streaming=False, httpx_client=http))
        results: dict[str, Any] = {"skills": [s.id for s in client._card.skills]}  # noqa: SLF001 - card is resolved by the factory
        try:
            for tool, arguments in (("forge_overview", {}), ("system_status", {"sample_seconds": 0.5})):
                message = new_message([new_data_part({"tool": tool, "arguments": arguments})], role=Role.ROLE_USER)
                async for event in client.send_message(SendMessageRequest(message=message)):
                    task = event.task
                    if task.status.state != TaskState.TASK_STATE_COMPLETED:
                        raise DemoFailed(f"A2A task for {tool} ended in state {TaskState.Name(task.status.state)}")
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
        *evaluation_lines(mcp["evaluation"]),
        "",
        *shipping_lines(mcp["shipped"]),
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
        f"Data (a messy CSV of short-answer questions, {TASK_NAME}.csv):",
        f"  import     {source['id']}: {source['rows']} rows, kind {source['kind']} "
        f"({imported['detection']['confidence']:.0%} of rows fit); skipped {imported['bad_lines']} unreadable line(s) "
        f"and {imported['unfit_rows']} row(s) that do not fit",
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


def evaluation_lines(evaluation: dict[str, Any]) -> list[str]:
    base, tuned = evaluation["scores"]["base"], evaluation["scores"]["tuned"]
    version = evaluation["version"]

    def row(name: str, a: float, b: float) -> str:
        return f"  {name:<11}{a:>10.3f}{b:>10.3f}"

    lines = [f"Evaluation ({base['dataset_id']} split {base['split']}, {base['rows']} held-out questions, greedy answers):",
             f"  {'':<11}{'base':>10}{'tuned':>10}", row("eval loss", base["loss"], tuned["loss"]),
             row("perplexity", base["perplexity"], tuned["perplexity"])]  # fmt: skip
    lines += [row(name, base["metrics"][name], tuned["metrics"][name]) for name in ("exact_match", "contains", "rouge_l")]
    for b, t in list(zip(base["examples"], tuned["examples"], strict=True))[:2]:
        lines.append(f"  example    {b['prompt'].strip()!r}: base {b['prediction']!r}, tuned {t['prediction']!r}")
    promoted = evaluation["promoted"]
    lines += [
        f"  chart      {evaluation['chart']} (model_compare_report returned it as {evaluation['chart_images']} PNG image)",
        f"  registry   {version['id']} registered (lineage: {version['base_model']}, {version['dataset_id']}, job {version['job_id']})",
        f"  promote    {promoted['id']} → {promoted['stage']} through the gate {evaluation['gate']}",
    ]
    return lines


def shipping_lines(shipped: dict[str, Any]) -> list[str]:
    export, service, answer = shipped["export"], shipped["service"], shipped["answer"]
    check = export["verification"]
    gguf = next(name for name in export["files"] if name.endswith(".gguf"))
    return [
        "Export and serving:",
        f"  export     {export['path']}/{gguf} ({export['files'][gguf] / 1024:.0f} KiB, {export['quantization']}), Modelfile for Ollama",
        f"  verified   top-1 next token agrees with the source on {check['top1_agreement']:.1%} of {check['positions']} positions "
        f"(needs {check['threshold']:.0%}); tokenizer {'matches' if check['tokenizer_matches'] else 'differs'}",
        f"  serve      {service['engine']} at {service['url']} (job {service['job_id']}, its own API key)",
        f"  litellm    {shipped['question']!r} → {answer['text']!r} ({answer['tokens']} tokens, {answer['seconds']} s)",
        f"  stopped    service {shipped['stopped']['state']}; "
        + ("nothing listens on its port any more" if shipped["port_free"] else "its port STILL answers"),
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


def _first_failure(exc: BaseException) -> BaseException:
    """The DemoFailed inside the task groups the MCP client wraps it in."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("forge-workspace"))
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    parser.add_argument("--results", type=Path, help="write the raw results as JSON to this file")
    parser.add_argument("--threads", default=TRAIN_THREADS, choices=["1", "2", "4", "8"],
                        help="torch CPU threads for the jobs (default 2; a test suite running two demos at once uses 1)")  # fmt: skip
    args = parser.parse_args()
    home = args.home.resolve()
    threads = {name: args.threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}  # the job workers inherit them
    server = ServerProcess(home, env=threads, log_path=home / "demo-server.log")
    home.mkdir(parents=True, exist_ok=True)
    print(f"starting forge-mcp serve (workspace {home}) …", flush=True)
    with server:
        print(f"listening on {server.url}", flush=True)
        try:
            mcp = asyncio.run(via_mcp(server.url, home))
            a2a = asyncio.run(via_a2a(server.url))
        except (DemoFailed, BaseExceptionGroup) as exc:
            print(f"\ndemo stopped: {_first_failure(exc)}\nthe server log is {server.log_path}", file=sys.stderr)
            return 1
        print(report(mcp, a2a))
        if args.json:
            print(json.dumps({"mcp": mcp, "a2a": a2a}, indent=2))
        if args.results:
            args.results.write_text(json.dumps({"mcp": mcp, "a2a": a2a}, indent=2))
    code = server.process.returncode if server.process else 0
    print(f"\nserver stopped (exit code {code}); log in {server.log_path}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
