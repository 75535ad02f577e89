"""The scripted LLM stand-in speaks enough OpenAI for real clients: chat completions plain
and streamed (SSE ending with [DONE]), legacy completions, the model list and a health
check; replies follow the script; requests are recorded; and as a command it takes the
flags of the server it stands in for and ignores the rest."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import httpx

from tests.conftest import REPO
from tests.polling import poll_until
from tests.scripted_llm import Failure, ScriptedLLM

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Greet ann7, please."}]


def test_chat_completions_follow_the_script_plain_and_streamed() -> None:
    script = [("ann7", "Hello, ann7!"), ("broken", Failure(500, "scripted outage"))]
    with ScriptedLLM(script, default="fallback", model="tiny-chat") as llm, httpx.Client(base_url=llm.url, timeout=10) as http:
        plain = http.post("/chat/completions", json={"model": "tiny-chat", "messages": CHAT}).json()
        with http.stream("POST", "/chat/completions", json={"model": "tiny-chat", "messages": CHAT, "stream": True}) as s:
            events = [line.removeprefix("data: ") for line in s.iter_lines() if line]
        other = http.post("/chat/completions", json={"messages": [{"role": "user", "content": "what?"}]}).json()
        failed = http.post("/chat/completions", json={"messages": [{"role": "user", "content": "broken"}]})
        legacy = http.post("/completions", json={"model": "tiny-chat", "prompt": "Greet ann7"}).json()
        models = http.get("/models").json()
        health = httpx.get(f"{llm.base_url}/health", timeout=10)
        missing = http.post("/embeddings", json={"input": "x"})
        recorded = llm.completions()
    assert plain["object"] == "chat.completion"
    assert plain["choices"][0]["message"] == {"role": "assistant", "content": "Hello, ann7!"}
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello, ann7!"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert other["choices"][0]["message"]["content"] == "fallback"
    assert failed.status_code == 500 and failed.json()["error"]["message"] == "scripted outage"
    assert legacy["choices"][0]["text"] == "Hello, ann7!"
    assert [m["id"] for m in models["data"]] == ["tiny-chat"] and health.status_code == 200
    assert missing.status_code == 404
    assert [r["messages"][-1]["content"] for r in recorded] == ["Greet ann7, please."] * 2 + ["what?", "broken"]


def test_a_callable_script_sees_the_whole_request() -> None:
    with ScriptedLLM(lambda body: f"{body['model']}:{len(body['messages'])}") as llm:
        reply = httpx.post(f"{llm.url}/chat/completions", json={"model": "m", "messages": CHAT}, timeout=10).json()
    assert reply["choices"][0]["message"]["content"] == "m:2"


def test_as_a_command_it_stands_in_for_a_server_and_ignores_flags_it_does_not_know() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, str(REPO / "tests" / "scripted_llm.py"), "--host", "127.0.0.1", "--port", str(port),
               "--model", "models/bot/v1", "--served-model-name", "bot@v1", "--api-key", "sk-1", "--reply", "canned answer",
               "--dtype", "float16", "--max-model-len=512", "--enable-lora"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:

        def healthy() -> bool:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        poll_until(healthy, timeout_s=30, what="the scripted LLM command to serve")
        key = {"Authorization": "Bearer sk-1"}
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models", headers=key, timeout=10).json()
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": CHAT}, headers=key, timeout=10)
        keyless = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={"messages": CHAT}, timeout=10)
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=15)
    assert models["data"][0]["id"] == "bot@v1"
    assert reply.json()["choices"][0]["message"]["content"] == "canned answer" and keyless.status_code == 401
    assert process.returncode == 0 and f"serving models/bot/v1 as bot@v1 on http://127.0.0.1:{port}/v1" in output
