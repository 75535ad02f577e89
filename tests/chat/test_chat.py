"""`forge-mcp chat` end to end: the real command, the MCP server it spawns (or a running one
at a URL with a key), the operator on the scripted LLM, which calls real tools. Through a
pseudo-terminal (pexpect: colours, live progress bar, Ctrl-C) and through a pipe."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from forge_mcp.backends.scripted_llm import Call, ScriptedLLM, ToolCalls, Turns, last_user_text, tool_results
from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.server_process import ServerProcess
from tests.conftest import forge_cli

pytest.importorskip("langgraph")
pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.e2e

FORGE = Path(sys.executable).with_name("forge-mcp")
WAIT_S = 60  # every expect and run is bounded by this
LONG_JOB = {"kind": "test_sleep", "arguments": {"seconds": 60, "steps": 60}}  # a progress step each second
ANSI = re.compile(r"\x1b\[")
THREAD = re.compile(r"thread (chat-[0-9a-f]+)")
CONVERSATION = [
    "What is this server?",
    "Start a long job",
    "Wait for it 3 seconds",
    "Cancel the job",
    "n",  # the y/N question: declined
    "Cancel the job",
    "y",  # now it runs
    "/tools",
    "/quit",
]


def started_job(body: dict[str, Any]) -> str:
    """The job test_job_start returned anywhere earlier in the conversation."""
    for message in reversed(body.get("messages", [])):
        if message.get("role") == "tool":
            try:
                data = json.loads(message.get("content") or "")
            except ValueError:
                continue
            if isinstance(data, dict) and "next_step" in data:
                return str(data["job_id"])
    return "job_none"


def overview_answer(body: dict[str, Any]) -> str:
    [result] = tool_results(body, name="forge_overview")
    return "This server is forge-mcp." if '"name":"forge-mcp"' in result.content else "I could not read the overview."


def wait_for_it(body: dict[str, Any]) -> ToolCalls:
    seconds = float(re.search(r"(\d+) seconds", last_user_text(body)).group(1))  # type: ignore[union-attr]
    return ToolCalls([Call("job_wait", {"job_id": started_job(body), "timeout_s": seconds})])


def job_state_answer(body: dict[str, Any]) -> str:
    results = tool_results(body, name="job_status")
    data = results[-1].data if results else None
    if not isinstance(data, dict):
        return "I could not read the job's state."
    return f"Job {data['id']} is {data['state']}."


SCRIPT = {
    "What is this server?": Turns([ToolCalls([Call("forge_overview", {})]), overview_answer]),
    "Start a long job": Turns([ToolCalls([Call("test_job_start", LONG_JOB)]), lambda b: f"Started {started_job(b)}."]),
    "Wait for it": Turns([wait_for_it, "It is still running."]),
    # job_cancel is destructive: the chat asks first; either way the model then looks at the job.
    "Cancel the job": Turns([
        lambda b: ToolCalls([Call("job_cancel", {"job_id": started_job(b)})]),
        lambda b: ToolCalls([Call("job_status", {"job_id": started_job(b)})]),
        job_state_answer,
    ]),  # fmt: skip
}


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM(SCRIPT, default="Hello.", model="scripted") as scripted:
        yield scripted


def chat_args(home: Path, llm: ScriptedLLM, *extra: str) -> list[str]:
    return ["--home", str(home), "chat", "--model", "openai/scripted", "--api-base", llm.url, *extra]


def chat_env() -> dict[str, str]:
    env = {**os.environ, TEST_KINDS_ENV: "1"}
    env.pop("NO_COLOR", None)
    return env


def run_piped(home: Path, llm: ScriptedLLM, lines: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FORGE), *chat_args(home, llm, *extra)], input="".join(f"{line}\n" for line in lines),
                          capture_output=True, text=True, timeout=WAIT_S * 2, env=chat_env())  # fmt: skip


def test_chat_in_a_terminal(tmp_path: Path, llm: ScriptedLLM) -> None:
    """Tool calls and results live, a progress bar redrawn in place, Ctrl-C cancelling a turn
    and not the chat, y/N before a destructive tool (declined: the job runs on), /tools, /quit."""
    transcript = io.StringIO()
    child = pexpect.spawn(str(FORGE), chat_args(tmp_path / "ws", llm, "--toolsets", "core,jobs,testing"),
                          env=chat_env(), encoding="utf-8", timeout=WAIT_S, dimensions=(40, 200))  # fmt: skip
    child.logfile_read = transcript
    try:
        child.expect(THREAD)
        child.expect_exact("you> ")
        child.sendcontrol("c")  # at the prompt: a word on how to leave, and the chat goes on
        child.expect_exact("(to leave: /quit or Ctrl-D)")
        child.expect_exact("you> ")
        child.sendline("What is this server?")
        child.expect_exact("→ forge_overview()")
        child.expect(r"✓ forge_overview: forge-mcp \S+")
        child.expect_exact("This server is forge-mcp.")
        child.expect_exact("you> ")

        child.sendline("Start a long job")
        child.expect(r"✓ test_job_start: (job_\w+) test_sleep")
        job = child.match.group(1)
        child.expect_exact(f"Started {job}.")
        child.expect_exact("you> ")

        child.sendline("Wait for it 60 seconds")
        child.expect_exact(f'→ job_wait(job_id="{job}", timeout_s=60.0)')
        child.expect(r"\r\x1b\[K\S*  job_wait \[#+-+\] \d+/60 \(\d+%\) RUNNING: slept \d+/60")  # the bar, drawn in place
        child.sendcontrol("c")
        child.expect_exact("\r\x1b[K")  # the bar is cleared
        child.expect_exact("cancelled: the turn stopped here")
        child.expect_exact("you> ")

        child.sendline("Cancel the job")
        child.expect_exact(f'Go ahead with job_cancel(job_id="{job}")? [y/N] ')
        child.sendline("n")
        child.expect_exact(f'→ job_status(job_id="{job}")')
        child.expect(rf"✓ job_status: {job} test_sleep RUNNING")  # declined: nothing changed
        child.expect_exact(f"Job {job} is RUNNING.")
        child.expect_exact("you> ")

        child.sendline("Cancel the job")
        child.expect_exact("[y/N] ")
        child.sendline("y")
        child.expect(rf"✓ job_cancel: {job} test_sleep")
        child.expect_exact("you> ")

        child.sendline("/tools")
        child.expect(r"job_cancel +asks first +Cancels a job")
        child.expect_exact("you> ")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close()
        (tmp_path / "transcript.txt").write_text(transcript.getvalue())
    assert child.exitstatus == 0, transcript.getvalue()[-3000:]
    shown = transcript.getvalue()
    assert "\x1b[32m✓" in shown and "\x1b[36m→" in shown  # colours on a terminal
    # The declined call reached the model as declined, and the job was still running after it;
    # the confirmed one ran.
    looked = [body for body in llm.completions() if tool_results(body, name="job_status")]
    declined, confirmed = looked[0], looked[-1]
    assert "the user declined" in tool_results(declined, name="job_cancel")[-1].content
    assert tool_results(declined, name="job_status")[-1].data["state"] == "RUNNING"
    assert tool_results(confirmed, name="job_cancel")[-1].data["state"] == "CANCELED"


def test_chat_through_a_pipe(tmp_path: Path, llm: ScriptedLLM) -> None:
    """The same conversation with no terminal: no colours, no bars (progress as a plain line),
    prompts and the lines read echoed, so the output reads as the conversation."""
    done = run_piped(tmp_path / "ws", llm, CONVERSATION, "--toolsets", "core,jobs,testing")
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    assert not ANSI.search(out) and "\r" not in out
    job = re.search(r"✓ test_job_start: (job_\w+) test_sleep", out).group(1)  # type: ignore[union-attr]
    expected_in_order = [
        "you> What is this server?\n→ forge_overview()\n✓ forge_overview: forge-mcp",
        "This server is forge-mcp.\n",
        f"Started {job}.\n",
        f'you> Wait for it 3 seconds\n→ job_wait(job_id="{job}", timeout_s=3.0)\n  … job_wait: ',
        f"✓ job_wait: {job} test_sleep RUNNING",
        # asked before the call runs: declined, it never runs, and the job runs on
        f'you> Cancel the job\nGo ahead with job_cancel(job_id="{job}")? [y/N] n\n',
        f'→ job_status(job_id="{job}")\n✓ job_status: {job} test_sleep RUNNING',
        f"Job {job} is RUNNING.\n",
        f'[y/N] y\n→ job_cancel(job_id="{job}")\n✓ job_cancel: {job} test_sleep',
        "you> /tools\n",
        "you> /quit\n",
    ]
    position = 0
    for piece in expected_in_order:
        found = out.find(piece, position)
        assert found >= 0, f"{piece!r} missing after position {position}:\n{out}"
        position = found + len(piece)
    assert out.count("  … job_wait: ") == 1  # a few progress events, one line
    assert re.search(r"\n  job_cancel +asks first +Cancels a job", out) and re.search(r"\n  job_wait +read-only +Use after", out)


def test_thread_resumes_with_its_open_question(tmp_path: Path, llm: ScriptedLLM) -> None:
    """Input ends at the y/N question: it stays open; --thread asks it again, and the model gets
    the whole conversation so far, after /model switched models too."""
    # The workspace's own operator-system prompt is what the model reads as its system message.
    saved = forge_cli(tmp_path / "ws", "call", "prompt_save", "--args", json.dumps(
        {"name": "operator-system", "template": "You are a terse operator.", "message": "shorter"}))  # fmt: skip
    assert saved.returncode == 0, saved.stderr[-3000:]
    first = run_piped(tmp_path / "ws", llm, ["What is this server?", "Cancel the job"])
    assert first.returncode == 0, first.stderr[-3000:]
    asked = [body for body in llm.completions() if last_user_text(body) == "What is this server?"]
    assert asked[-1]["messages"][0] == {"role": "system", "content": "You are a terse operator."}
    thread = THREAD.search(first.stdout).group(1)  # type: ignore[union-attr]
    assert f"the question stays open; resume with --thread {thread}" in first.stdout

    second = run_piped(tmp_path / "ws", llm, ["n", "/model openai/scripted-two", "/model", "Hello again"], "--thread", thread)
    assert second.returncode == 0, second.stderr[-3000:]
    out = second.stdout
    assert f"thread {thread}" in out
    assert 'Go ahead with job_cancel(job_id="job_none")? [y/N] n\n→ job_status(job_id="job_none")\n✗ job_status: ' in out
    assert "I could not read the job's state.\n" in out  # the tool's error reached the model as text
    assert f"model openai/scripted-two at {llm.url} (thread {thread} goes on)\nyou> /model\nmodel openai/scripted-two" in out
    hello = [body for body in llm.completions() if last_user_text(body) == "Hello again"]
    assert hello and hello[-1]["model"] == "scripted-two", out
    said = [(m["role"], m.get("content")) for m in hello[-1]["messages"]]
    assert ("user", "What is this server?") in said and ("assistant", "This server is forge-mcp.") in said
    assert ("user", "Cancel the job") in said
    assert out.rstrip().endswith("you> Hello again\nHello.\nyou>")


def test_chat_with_a_running_server_and_a_key(tmp_path: Path, llm: ScriptedLLM) -> None:
    """--url and --key against `forge-mcp serve` with auth on: the conversation works and its
    trace is stored (source chat) for the key's holder; a wrong key and a forge: model that
    nothing serves end with a message saying what to do."""
    home = tmp_path / "server"
    created = forge_cli(home, "keys", "create", "--name", "chatter", "--scopes", "train")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    with ServerProcess(home, args=("--auth", "on")) as server:
        done = run_piped(tmp_path / "ws", llm, ["What is this server?"], "--url", server.url, "--key", key)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "✓ forge_overview: forge-mcp" in done.stdout and "This server is forge-mcp." in done.stdout
        thread = THREAD.search(done.stdout).group(1)  # type: ignore[union-attr]

        wrong = run_piped(tmp_path / "ws", llm, [], "--url", server.url, "--key", "forge_" + "A" * 43)
        assert wrong.returncode == 2
        assert "refused the key (HTTP 401)" in wrong.stderr and "A" * 43 not in wrong.stderr + wrong.stdout

        served = subprocess.run(
            [str(FORGE), "--home", str(tmp_path / "ws"), "chat", "--url", server.url, "--key", key,
             "--model", "forge:support@v1"],
            input="", capture_output=True, text=True, timeout=WAIT_S, env=chat_env(),
        )  # fmt: skip
        assert served.returncode == 2
        assert "no running service of yours serves support@v1; start one with serve_start" in served.stderr

        async def traces() -> list[dict[str, Any]]:
            async with httpx2.AsyncClient(headers={"authorization": f"Bearer {key}"}) as http:
                async with Client(streamable_http_client(f"{server.url}/mcp/", http_client=http)) as client:
                    listed = await client.call_tool("trace_list", {"source": "chat"})
            assert not listed.is_error, listed.content
            return listed.structured_content["traces"]

        import asyncio

        [trace] = asyncio.run(traces())
    assert trace["thread"] == thread and trace["outcome"] == "answered" and trace["model"] == "openai/scripted"
    assert trace["principal"] == "chatter"
