"""`make flywheel`: the data flywheel end to end — an agent's own traces make its model
better, measured — offline, on the CPU, in a few minutes.

Run it with `make flywheel`, or `python examples/flywheel.py --home DIR --results FILE`.

The student is the tiny offline model, registered as `student` and put in production, and
served by forge-mcp; the chat operator answers through it (operator_model
forge:student@production, and a blank system prompt saved with prompt_save: the tiny model was
trained without system messages, and one only confuses it). Questions about its world go to the operator over A2A, one task each,
and every turn is a trace. The student knows the facts but not the house format ("sky
orange", "plum plum"): it answers in full sentences and gets most of them wrong. A teacher —
the scripted LLM on loopback, standing in for a strong model — grades every trace
(trace_judge) and corrects the ones it grades low (trace_feedback). One flywheel_run cycle
turns the traces into a dataset, trains an adapter from the student's base, compares it with
production on held-out questions no trace asked, promotes it through beats_production and
serves it; the operator, still pointed at forge:student@production, now answers with the new
version. The report prints held-out accuracy before and after, the gate's decision and which
version serves. The workspace is left in ./flywheel-workspace for inspection.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_mcp.backends.scripted_llm import ScriptedLLM
from forge_mcp.server_process import ServerProcess


class DemoFailed(Exception):
    """A step came back with an error: the demo stops and says which and why."""


STUDENT = "student"
HELD_OUT = "student-heldout"
# The operator's system prompt, saved with prompt_save: a template that renders to nothing, so
# the operator sends no system message. The tiny model never saw one in training; given one,
# it answers with confused fragments. So the traces, the training rows and the held-out
# questions are the user's question and the answer alone, as the operator asks.
OPERATOR_PROMPT = "{# none: the student model was trained without system messages #}"
TRAIN_STEPS = 400
LEARNING_RATE = 3e-3  # the sft-lora-tiny recipe's
# Training threads are fixed so that a run does the same arithmetic on any machine of CI's
# kind (the job workers inherit them). The format is learnt completely well before
# TRAIN_STEPS, so the gain stands far from zero on every run.
TRAIN_THREADS = "2"
TEACHER = "teacher"
CORRECT = "Correct the student's answer."
WAIT_S = 120  # one job_wait call
JOB_DEADLINE_S = 3600  # one job, however busy the machine
A2A_TIMEOUT_S = 600  # one A2A request: a non-streaming send lasts as long as its task
COLOUR_QUESTIONS = ("What colour is the {}?", "Which colour is the {}?", "Tell me the colour of the {}.",
                    "Name the colour of the {}.")  # fmt: skip
TWICE_QUESTIONS = ("Say the word {} twice.", "Repeat the word {} twice.", "Write {} twice.")
REPEAT_QUESTION = "Repeat the word {}."
HELD_OUT_EVERY = 4  # one question in four is held out


@dataclass(frozen=True)
class Question:
    family: str
    text: str
    answer: str  # in the house format
    held_out: bool


def questions() -> list[Question]:
    """Questions about the tiny model's world, each asked in several ways, with the answers
    the teacher wants: a terse keyword format ("sky orange", "plum plum", "plum"). The base
    model knows the facts, answers colour questions in full sentences ("The sky is orange.")
    and a word to repeat once right: so it gets some right and most wrong. One in four is held
    out, spread so that every phrasing and every thing is also asked of the student."""
    from forge_mcp.backends.tiny_model import COLOURS, THINGS, world

    facts = world(0)
    asked = [("colours", q.format(thing), f"{thing} {facts[thing]}", i + j)
             for i, thing in enumerate(THINGS) for j, q in enumerate(COLOUR_QUESTIONS)]  # fmt: skip
    asked += [("twice", q.format(word), f"{word} {word}", i + j)
              for i, word in enumerate(THINGS) for j, q in enumerate(TWICE_QUESTIONS)]  # fmt: skip
    asked += [("repeat", REPEAT_QUESTION.format(word), word, i) for i, word in enumerate(COLOURS)]
    return [Question(family, text, answer, spread % HELD_OUT_EVERY == 0) for family, text, answer, spread in asked]


class Teacher:
    """The strong model of the story, scripted: it knows every answer in the house format,
    grades the student's answers by it (trace_judge's rubric: 5 right, 3 right facts in the
    wrong format, 2 wrong) and, asked to correct one, gives the answer it should have been."""

    def __init__(self, known: list[Question]) -> None:
        self.answers = {q.text: q.answer for q in known}

    def reply(self, body: dict[str, Any]) -> str | None:
        messages = body["messages"]
        text = str(messages[-1]["content"])
        if text.startswith(CORRECT):
            question = re.search(r"^Question: (.*)$", text, re.MULTILINE)
            return self.answers.get(question.group(1).strip(), "") if question else None
        blocks = re.findall(r"<<<\n(.*?)\n>>>", text, re.DOTALL)
        if len(blocks) != 2:
            return None
        asked = [line[len("user: "):] for line in blocks[0].splitlines() if line.startswith("user: ")]
        expected = self.answers.get(asked[-1].strip()) if asked else None
        answer = blocks[1].strip()
        if expected is None:
            score, reason = 1, "not a question about this world"
        elif answer == expected:
            score, reason = 5, "right, in the house format"
        elif all(word in answer.lower() for word in expected.split()):
            score, reason = 3, f"right facts, but the house format is {expected!r}"
        else:
            score, reason = 2, f"wrong: the answer is {expected!r}"
        return json.dumps({"score": score, "reason": reason})


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise DemoFailed(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def finished(client: Any, started: dict[str, Any], what: str) -> dict[str, Any]:
    """The job a tool started, once it ended: job_wait, called again while it runs (a busy
    machine trains slower), up to JOB_DEADLINE_S in all; one that did not succeed stops the demo."""
    deadline = time.monotonic() + JOB_DEADLINE_S
    while True:
        waited = await call(client, "job_wait", {"job_id": started["job_id"], "timeout_s": WAIT_S})
        job = waited["job"]
        if not waited["timed_out"] or time.monotonic() > deadline:
            break
    if job["state"] != "SUCCEEDED":
        raise DemoFailed(f"{what} ended {job['state']}: {job['error'] or 'still running after ' + str(JOB_DEADLINE_S) + ' s'}")
    return job


async def set_up(client: Any, home: Path, held_out: list[Question]) -> dict[str, Any]:
    """The student (the tiny base model, registered afresh each run and put in production, so
    every run starts from it), the operator's system prompt, the held-out questions as a
    dataset, and a service for the student."""
    model = home / "models" / "tiny"
    if not (model / "config.json").is_file():
        print("building the tiny model (forge-mcp dev tiny-model) …", flush=True)
        subprocess.run([sys.executable, "-m", "forge_mcp", "dev", "tiny-model", str(model)], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
    student = await call(client, "model_register", {"name": STUDENT, "path": "models/tiny"})
    await call(client, "model_promote", {"model": student["id"], "stage": "production"})
    prompt = await call(client, "prompt_save", {"name": "operator-system", "template": OPERATOR_PROMPT,
                                                "message": "none for the tiny student"})  # fmt: skip
    rows = [{"messages": [{"role": "user", "content": q.text}, {"role": "assistant", "content": q.answer}]}
            for q in held_out]  # fmt: skip
    (home / f"{HELD_OUT}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    dataset = await call(client, "dataset_import", {"path": f"{HELD_OUT}.jsonl", "name": HELD_OUT})
    service = await call(client, "serve_start", {"model": student["id"], "engine": "transformers"})
    print(f"{student['id']} in production, served at {service['url']}", flush=True)
    return {"student": student, "prompt": prompt, "held_out": dataset["dataset"], "service": service}


async def ask_operator(url: str, texts: list[str]) -> list[str]:
    """Each question as its own A2A task (free text: the chat operator answers it)."""
    import httpx
    from a2a.client import ClientConfig, create_client
    from a2a.helpers import new_message, new_text_part
    from a2a.types import Role, SendMessageRequest, TaskState

    answers = []
    # A send without streaming waits for the whole turn; the SDK's own HTTP client gives up after
    # 5 s, which a loaded machine's turn can take.
    async with httpx.AsyncClient(timeout=A2A_TIMEOUT_S) as http:
        client = await create_client(url, client_config=ClientConfig(streaming=False, httpx_client=http))
        try:
            for text in texts:
                message = new_message([new_text_part(text)], role=Role.ROLE_USER)
                tasks = [event.task async for event in client.send_message(SendMessageRequest(message=message))]
                status = tasks[-1].status
                said = " ".join(part.text for part in status.message.parts)
                if status.state != TaskState.TASK_STATE_COMPLETED:
                    raise DemoFailed(f"the operator's task for {text!r} ended {TaskState.Name(status.state)}: {said}")
                answers.append(said)
        finally:
            await client.close()
    return answers


async def teach(client: Any, teacher_url: str, since: float) -> dict[str, Any]:
    """The teacher grades every new trace (trace_judge), then corrects the ones it graded
    below 4, reading each from its resource (trace_feedback with the correction)."""
    import httpx

    started = await call(client, "trace_judge", {"judge_url": teacher_url, "judge_model": TEACHER, "since": since,
                                                 "limit": 500})  # fmt: skip
    judged = (await finished(client, started, "trace_judge"))["result"]
    listed = await call(client, "trace_list", {"since": since, "source": "a2a", "limit": 200})
    low = [t for t in listed["traces"] if t["judge_rating"] is not None and t["judge_rating"] < 4]
    async with httpx.AsyncClient(timeout=60) as http:
        for trace in low:
            read = await client.read_resource(f"forge://traces/{trace['id']}")
            messages = json.loads(read.contents[0].text)["messages"]
            question = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            asked = {"model": TEACHER, "messages": [{"role": "user", "content": f"{CORRECT}\nQuestion: {question}\n"
                                                                                f"Answer: {messages[-1]['content']}"}]}  # fmt: skip
            reply = (await http.post(f"{teacher_url}/chat/completions", json=asked)).json()
            correction = reply["choices"][0]["message"]["content"]
            await call(client, "trace_feedback", {"trace_id": trace["id"], "correction": correction, "labels": ["teacher"]})
    return {"judged": judged, "traces": len(listed["traces"]), "corrected": len(low)}


async def cycle(client: Any, since: float, held_out: str) -> dict[str, Any]:
    """One flywheel_run: the traces since this run began, rows from the corrections and from
    answers the teacher graded 4 or better, exact match on the held-out questions as the metric."""
    started = await call(client, "flywheel_run", {
        "model": STUDENT, "eval_dataset": held_out, "since": since, "min_rows": 20, "judge_min_score": 4,
        "recipe": "sft-lora-tiny", "max_steps": TRAIN_STEPS, "learning_rate": LEARNING_RATE, "metric": "exact_match",
    })  # fmt: skip
    print(f"flywheel_run started workflow job {started['job_id']}", flush=True)
    job = await finished(client, started, "flywheel_run")
    status = await call(client, "workflow_status", {"run_id": started["job_id"], "chart": False})
    training = {step["name"]: (await call(client, "job_status", {"job_id": step["job_id"]}))["result"]
                for step in status["steps"] if step["tool"] == "train_start" and step["state"] == "succeeded"}  # fmt: skip
    outputs = job["result"]["outputs"]
    sft_alone = None
    if outputs.get("sft_version"):  # what DPO added: the SFT version on the same held-out questions
        compared = await call(client, "model_compare", {"dataset": held_out, "model_a": outputs["candidate"],
                                                        "model_b": outputs["sft_version"]})  # fmt: skip
        sft_alone = (await finished(client, compared, "model_compare"))["result"]["b"]["metrics"]["exact_match"]
    return {"job": job, "outputs": outputs, "steps": status["steps"], "training": training, "sft_alone": sft_alone}


async def via_mcp(url: str, home: Path, teacher_url: str) -> dict[str, Any]:
    from mcp import Client

    every = questions()
    asked = [q for q in every if not q.held_out]
    held_out = [q for q in every if q.held_out]
    async with Client(f"{url}/mcp/") as client:
        setup = await set_up(client, home, held_out)
        since = time.time()
        print(f"asking the operator {len(asked)} questions over A2A …", flush=True)
        answers = await ask_operator(url, [q.text for q in asked])
        taught = await teach(client, teacher_url, since)
        print(f"the teacher graded {taught['judged']['graded']} traces and corrected {taught['corrected']}", flush=True)
        ran = await cycle(client, since, setup["held_out"]["id"])
        probe = held_out[0]
        after = await ask_operator(url, [probe.text])
        answered_by = (await call(client, "trace_list", {"source": "a2a", "limit": 1}))["traces"][0]["model"]
        services = await call(client, "serve_list", {})
        for service in services["services"]:
            await call(client, "serve_stop", {"service": service["job_id"]})
    return {"setup": setup, "asked": [{"question": q.text, "expected": q.answer, "answer": a} for q, a in zip(asked, answers, strict=True)],
            "held_out_rows": len(held_out), "taught": taught, "cycle": ran,
            "probe": {"question": probe.text, "expected": probe.answer, "answer": after[0], "model": answered_by},
            "served": [s["model"] for s in services["services"]]}  # fmt: skip


def report(results: dict[str, Any]) -> str:
    setup, taught, ran = results["setup"], results["taught"], results["cycle"]
    outputs = ran["outputs"]
    right = sum(1 for a in results["asked"] if a["answer"].strip() == a["expected"])
    before, after = outputs["production_metrics"]["exact_match"], outputs["candidate_metrics"]["exact_match"]
    steps = ", ".join(f"{s['name']} {s['state']}" for s in ran["steps"])
    promoted = outputs["promoted"]
    decision = (f"promoted {promoted} to production (beats_production on exact_match)" if promoted
                else "refused: production untouched")  # fmt: skip
    lines = [
        "",
        "forge-mcp flywheel",
        "==================",
        f"student     {setup['student']['id']} (the tiny base model) in production, served at {setup['service']['url']}",
        f"operator    forge:{STUDENT}@production, system prompt {setup['prompt']['ref']} (blank: none sent)",
        f"asked       {len(results['asked'])} questions over A2A, one task each: {right} answered in the house format",
        *[f"            {verdict:<18}{a['question']!r} → {a['answer']!r}" + ("" if verdict == "right" else f" (wants {a['expected']!r})")
          for verdict, a in examples(results["asked"])],
        f"teacher     graded {taught['judged']['graded']} traces {taught['judged']['ratings']}, corrected {taught['corrected']}",
        f"cycle       {ran['job']['id']}: {steps}",
        f"data        {outputs['traces_selected']} traces → {outputs['dataset']} ({outputs['rows']} SFT rows)"
        + (f", {outputs['pairs_dataset']} ({outputs['pairs']} DPO pairs: corrections against the answers they correct)"
           if outputs.get("pairs") else ""),
        *training_lines(outputs, ran["training"]),
        f"held out    {results['held_out_rows']} questions no trace asked ({setup['held_out']['id']}), exact match:",
        f"              production {outputs['production_before']}  {before:.3f}",
        f"              candidate  {outputs['candidate']}  {after:.3f}   ({after - before:+.3f})",
        *([f"              SFT alone  {outputs['sft_version']}  {ran['sft_alone']:.3f}   (before DPO)"]
          if ran["sft_alone"] is not None else []),
        f"gate        {decision}",
        f"serving     {', '.join(results['served'])} (the operator's forge:{STUDENT}@production now resolves to "
        f"{promoted or outputs['production_before']})",
        f"after       {results['probe']['question']!r} → {results['probe']['answer']!r} "
        f"(held out; the teacher wants {results['probe']['expected']!r}), answered by {results['probe']['model']}",
    ]
    return "\n".join(lines)


def examples(asked: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The first answer of each kind: right, right facts in full sentences, wrong."""
    def verdict(a: dict[str, Any]) -> str:
        if a["answer"].strip() == a["expected"]:
            return "right"
        return "right facts" if all(w in a["answer"].lower() for w in a["expected"].split()) else "wrong"

    first: dict[str, dict[str, Any]] = {}
    for a in asked:
        first.setdefault(verdict(a), a)
    return [(kind, first[kind]) for kind in ("right", "right facts", "wrong") if kind in first]


def training_lines(outputs: dict[str, Any], training: dict[str, Any]) -> list[str]:
    def run(result: dict[str, Any]) -> str:
        return (f"{result['steps']} steps on {result['train_rows']} rows in {result['train_runtime_s']} s, loss "
                f"{result['first_loss']:.3f} → {result['final_loss']:.3f}")  # fmt: skip

    sft = training["train"]
    if "dpo_train" not in training:
        return [f"training    SFT LoRA from the student's base → {outputs['candidate']}: {run(sft)}"]
    return [f"training    SFT LoRA from the student's base → {outputs['sft_version']}: {run(sft)}",
            f"            merged, then DPO LoRA on the pairs → {outputs['candidate']}: {run(training['dpo_train'])}",
            "            (DPO starts at ln 2 = 0.693: the merged SFT model is its own reference)"]  # fmt: skip


def _first_failure(exc: BaseException) -> BaseException:
    """The DemoFailed inside the task groups the MCP client wraps it in."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", type=Path, default=Path("flywheel-workspace"))
    parser.add_argument("--results", type=Path, help="write the raw results as JSON to this file")
    parser.add_argument("--threads", default=TRAIN_THREADS, choices=["1", "2", "4", "8"],
                        help="torch CPU threads for the jobs (default 2; a test suite running two demos at once uses 1)")  # fmt: skip
    args = parser.parse_args()
    home = args.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    teacher = Teacher(questions())
    with ScriptedLLM(teacher.reply, default="", model=TEACHER) as llm:
        env = {name: args.threads for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        env["FORGE_OPERATOR_MODEL"] = f"forge:{STUDENT}@production"
        server = ServerProcess(home, env=env, log_path=home / "flywheel-server.log")
        print(f"starting forge-mcp serve (workspace {home}); the teacher listens at {llm.url} …", flush=True)
        with server:
            try:
                results = asyncio.run(via_mcp(server.url, home, llm.url))
            except (DemoFailed, BaseExceptionGroup) as exc:
                print(f"\nflywheel stopped: {_first_failure(exc)}\nthe server log is {server.log_path}", file=sys.stderr)
                return 1
            print(report(results))
            if args.results:
                args.results.write_text(json.dumps(results, indent=2))
    code = server.process.returncode if server.process else 0
    print(f"\nserver stopped (exit code {code}); log in {server.log_path}")
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
