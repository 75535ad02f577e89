"""The scripted LLM stand-in speaks enough OpenAI for real clients: chat completions plain
and streamed (SSE ending with [DONE]), tool calls in OpenAI's shapes both ways, usage (in a
stream when asked), legacy completions, the model list and a health check; replies follow the
script, by the step of an agent's turn if need be; requests are recorded; LangChain's
ChatLiteLLM gets tool calls and usage from it; and as a command it takes the flags of the
server it stands in for and ignores the rest."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest

from forge_mcp.backends.scripted_llm import (
    Call,
    Failure,
    ScriptedLLM,
    ToolCalls,
    Turns,
    offered_tools,
    step,
    tool_results,
)
from tests.polling import poll_until

CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Greet ann7, please."}]
TOOLS = [{"type": "function", "function": {"name": name, "description": f"The {name} tool",
                                           "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}
         for name in ("dataset_import", "train_start")]  # fmt: skip
GENERATED_ID = re.compile(r"call_[0-9a-f]{24}")


def sse(http: httpx.Client, body: dict[str, Any]) -> list[str]:
    with http.stream("POST", "/chat/completions", json={**body, "stream": True}) as s:
        return [line.removeprefix("data: ") for line in s.iter_lines() if line]


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
    command = [sys.executable, "-m", "forge_mcp.backends.scripted_llm", "--host", "127.0.0.1", "--port", str(port),
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


def test_tool_calls_come_in_openai_shapes_plain_and_streamed_with_usage_when_asked() -> None:
    reply = ToolCalls([Call("dataset_import", {"path": "data/greet.jsonl", "name": "greet"}, id="call_given"),
                       Call("train_start", {})], text="Importing it first.")  # fmt: skip
    body = {"model": "m", "messages": [{"role": "user", "content": "Import greet and train"}], "tools": TOOLS}
    with ScriptedLLM({"Import greet": reply, "no text": ToolCalls([Call("train_start", {"epochs": 2})])}) as llm, \
            httpx.Client(base_url=llm.url, timeout=10) as http:  # fmt: skip
        plain = http.post("/chat/completions", json=body).json()
        again = http.post("/chat/completions", json=body).json()
        bare = http.post("/chat/completions", json={"messages": [{"role": "user", "content": "no text"}]}).json()
        streamed = sse(http, body)
        counted = sse(http, {**body, "stream_options": {"include_usage": True}})
        text_counted = sse(http, {"messages": CHAT, "stream_options": {"include_usage": True}})
        recorded = llm.completions()
    [choice] = plain["choices"]
    generated = choice["message"]["tool_calls"][1]["id"]
    assert GENERATED_ID.fullmatch(generated) and generated != again["choices"][0]["message"]["tool_calls"][1]["id"]
    assert choice == {"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Importing it first.", "tool_calls": [
            {"id": "call_given", "type": "function",
             "function": {"name": "dataset_import", "arguments": '{"path": "data/greet.jsonl", "name": "greet"}'}},
            {"id": generated, "type": "function", "function": {"name": "train_start", "arguments": "{}"}}]}}  # fmt: skip
    # Words: 4 of the prompt; 3 of the text + per call its name and its JSON arguments split on spaces (1+4, 1+1).
    assert plain["usage"] == {"prompt_tokens": 4, "completion_tokens": 10, "total_tokens": 14}
    assert bare["choices"][0]["message"]["content"] is None and bare["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(bare["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]) == {"epochs": 2}

    assert streamed[-1] == "[DONE]"
    chunks = [json.loads(e) for e in streamed[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and len(c["choices"]) == 1 and "usage" not in c for c in chunks)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * (len(chunks) - 1) + ["tool_calls"]
    assert deltas[0] == {"role": "assistant", "content": ""} and deltas[-1] == {}
    assert "".join(d.get("content", "") for d in deltas) == "Importing it first."
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert all(len(c) == 1 for c in calls)
    calls = [c[0] for c in calls]
    assert not any("tool_calls" in d and "content" in d for d in deltas)
    assert deltas.index({"content": "first."}) < deltas.index({"tool_calls": [calls[0]]})  # text before the calls
    opening = [c for c in calls if "id" in c]
    streamed_id = opening[1]["id"]
    assert opening == [{"index": 0, "id": "call_given", "type": "function",
                        "function": {"name": "dataset_import", "arguments": ""}},
                       {"index": 1, "id": streamed_id, "type": "function",
                        "function": {"name": "train_start", "arguments": ""}}]  # fmt: skip
    assert GENERATED_ID.fullmatch(streamed_id) and streamed_id != generated
    pieces = [c for c in calls if "id" not in c]
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"} for c in pieces)
    first = [c["function"]["arguments"] for c in pieces if c["index"] == 0]
    assert len(first) > 1 and "".join(first) == '{"path": "data/greet.jsonl", "name": "greet"}'
    assert "".join(c["function"]["arguments"] for c in pieces if c["index"] == 1) == "{}"
    assert calls.index(opening[1]) > max(i for i, c in enumerate(calls) if c["index"] == 0)  # one call after another

    # include_usage: the same chunks with usage null, then a last one with no choices and the usage.
    usage_chunks = [json.loads(e) for e in counted[:-1]]
    assert counted[-1] == "[DONE]" and len(usage_chunks) == len(chunks) + 1
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in usage_chunks[:-1])
    assert usage_chunks[-1]["choices"] == [] and usage_chunks[-1]["id"] == usage_chunks[0]["id"]
    assert usage_chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 10, "total_tokens": 14}
    text_chunks = [json.loads(e) for e in text_counted[:-1]]
    assert text_chunks[-2]["choices"][0]["finish_reason"] == "stop" and text_chunks[-1]["choices"] == []
    assert text_chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert [offered_tools(b) for b in recorded] == [["dataset_import", "train_start"]] * 2 + [[]] + [
        ["dataset_import", "train_start"]] * 2 + [[]]  # fmt: skip


def conversation(*after_user: dict[str, Any]) -> dict[str, Any]:
    earlier = [{"role": "user", "content": "Import greet"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_old", "type": "function", "function": {"name": "dataset_import", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_old", "content": '{"name": "old"}'},
        {"role": "assistant", "content": "Imported."}]  # fmt: skip
    return {"messages": [{"role": "system", "content": "You run forge."}, *earlier,
                         {"role": "user", "content": "Train on greet"}, *after_user]}  # fmt: skip


def called(ident: str, name: str) -> dict[str, Any]:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": ident, "type": "function", "function": {"name": name, "arguments": "{}"}}]}  # fmt: skip


def test_turns_answer_by_the_step_since_the_last_user_message_and_read_what_the_tools_returned() -> None:
    after_import = conversation(called("call_1", "dataset_import"),
                                {"role": "tool", "tool_call_id": "call_1", "content": '{"name": "greet", "rows": 4}'})
    after_train = conversation(*after_import["messages"][-2:], called("call_2", "train_start"),
                               {"role": "tool", "tool_call_id": "call_2",
                                "content": [{"type": "text", "text": "job_1"}, {"type": "text", "text": "queued"}]})
    assert [step(conversation()), step(after_import), step(after_train)] == [0, 1, 2]
    assert step({"messages": [{"role": "assistant", "content": "hi"}]}) == 1  # no user message: all of them
    assert tool_results(conversation()) == []  # the earlier turn's results are not this turn's
    [imported] = tool_results(after_import)
    assert (imported.name, imported.id, imported.data) == ("dataset_import", "call_1", {"name": "greet", "rows": 4})
    assert [(r.name, r.content, r.data) for r in tool_results(after_train)] == [
        ("dataset_import", '{"name": "greet", "rows": 4}', {"name": "greet", "rows": 4}),
        ("train_start", "job_1 queued", None)]  # fmt: skip
    assert [r.id for r in tool_results(after_train, name="train_start")] == ["call_2"]

    def train(body: dict[str, Any]) -> ToolCalls:
        dataset = tool_results(body, name="dataset_import")[-1].data["name"]
        return ToolCalls([Call("train_start", {"dataset": dataset}, id="call_t")])

    turns = Turns([ToolCalls([Call("dataset_import", {"path": "greet.jsonl"}, id="call_i")]), train, "Training."])
    script = {"Train on": turns, "Import": Turns(["Importing."], default="Done importing."), "nothing": lambda _: None}
    asked = [conversation(), after_import, after_train, conversation(*after_train["messages"][-4:], {"role": "assistant",
             "content": "Training."}), {"messages": [{"role": "user", "content": "Import it"}]},  # fmt: skip
             {"messages": [{"role": "user", "content": "Import it"}, {"role": "assistant", "content": "Importing."}]},
             {"messages": [{"role": "user", "content": "nothing to do"}]}]  # fmt: skip
    with ScriptedLLM(script, default="server default") as llm, httpx.Client(base_url=llm.url, timeout=10) as http:
        messages = [http.post("/chat/completions", json=body).json()["choices"][0]["message"] for body in asked]
        called_back = ScriptedLLM(lambda _: None, default=turns)
        assert called_back.reply_for(after_import) == train(after_import)  # a default may be a Turns too
    assert messages[0]["tool_calls"][0]["id"] == "call_i"
    assert messages[1]["tool_calls"] == [{"id": "call_t", "type": "function",
                                          "function": {"name": "train_start", "arguments": '{"dataset": "greet"}'}}]
    assert [m["content"] for m in messages[2:]] == ["Training.", "server default", "Importing.", "Done importing.",
                                                    "server default"]  # fmt: skip


@pytest.fixture
def chat_litellm(monkeypatch: pytest.MonkeyPatch) -> Any:
    """LangChain's ChatLiteLLM, imported without litellm fetching its price table."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    from langchain_litellm import ChatLiteLLM

    return ChatLiteLLM


async def test_chat_litellm_gets_tool_calls_invoked_and_streamed_and_the_streamed_usage(chat_litellm: Any) -> None:
    reply = ToolCalls([Call("dataset_import", {"path": "data/greet.jsonl", "name": "greet"}, id="call_a"),
                       Call("train_start", {"spec": {"epochs": 2}}, id="call_b")], text="On it.")  # fmt: skip
    with ScriptedLLM({"greet": reply}, model="operator", api_key="sk-test") as llm:
        model = chat_litellm(model="openai/operator", api_base=llm.url, api_key="sk-test", request_timeout=30)
        bound = model.bind_tools(TOOLS)
        invoked = await bound.ainvoke("Import greet and train on it")
        streamed = None
        async for chunk in bound.astream("Import greet and train on it"):
            streamed = chunk if streamed is None else streamed + chunk
        text = None
        async for chunk in model.astream("Say hello"):
            text = chunk if text is None else text + chunk
        recorded = llm.completions()
    expected = [{"name": "dataset_import", "args": {"path": "data/greet.jsonl", "name": "greet"}, "id": "call_a",
                 "type": "tool_call"},
                {"name": "train_start", "args": {"spec": {"epochs": 2}}, "id": "call_b", "type": "tool_call"}]  # fmt: skip
    # Words: 6 of the prompt; 2 of the text + names and JSON arguments split on spaces (1+4, 1+3).
    usage = {"input_tokens": 6, "output_tokens": 11, "total_tokens": 17}
    assert invoked.tool_calls == expected and invoked.content == "On it." and invoked.usage_metadata == usage
    assert invoked.response_metadata["finish_reason"] == "tool_calls"
    assert streamed.tool_calls == expected and streamed.content == "On it." and streamed.invalid_tool_calls == []
    # litellm would make up other counts without the usage chunk: these are the server's.
    assert streamed.usage_metadata == usage and streamed.response_metadata["finish_reason"] == "tool_calls"
    counts = {k: text.usage_metadata[k] for k in ("input_tokens", "output_tokens", "total_tokens")}
    assert text.content == "OK" and text.tool_calls == [] and counts == {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3}
    assert [(b.get("stream", False), b.get("stream_options"), offered_tools(b)) for b in recorded] == [
        (False, None, ["dataset_import", "train_start"]),
        (True, {"include_usage": True}, ["dataset_import", "train_start"]),
        (True, {"include_usage": True}, [])]  # fmt: skip


async def test_a_three_step_agent_conversation_through_chat_litellm(chat_litellm: Any) -> None:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    def train(body: dict[str, Any]) -> ToolCalls:
        dataset = tool_results(body, name="dataset_import")[-1].data["dataset"]
        return ToolCalls([Call("train_start", {"path": dataset})])

    script = {"Train a model": Turns([ToolCalls([Call("dataset_import", {"path": "greet.jsonl"})]), train,
                                      "Training started."])}  # fmt: skip
    tool_outputs = {"dataset_import": '{"dataset": "greet@v3"}', "train_start": '{"job_id": "job_7"}'}
    with ScriptedLLM(script, default="I can't help with that.") as llm:
        bound = chat_litellm(model="openai/operator", api_base=llm.url, api_key="k", request_timeout=30).bind_tools(TOOLS)
        messages: list[Any] = [HumanMessage("Train a model on greet.jsonl")]
        for _ in range(4):  # the agent's loop: call tools until the model answers with text
            answer = None
            async for chunk in bound.astream(messages):
                answer = chunk if answer is None else answer + chunk
            messages.append(answer)
            if not answer.tool_calls:
                break
            messages += [ToolMessage(tool_outputs[c["name"]], tool_call_id=c["id"]) for c in answer.tool_calls]
        recorded = llm.completions()
    steps = [m for m in messages if isinstance(m, AIMessage)]
    assert [[(c["name"], c["args"]) for c in m.tool_calls] for m in steps] == [
        [("dataset_import", {"path": "greet.jsonl"})], [("train_start", {"path": "greet@v3"})], []]
    assert steps[-1].content == "Training started." and len(recorded) == 3
    assert all(GENERATED_ID.fullmatch(m.tool_calls[0]["id"]) for m in steps[:2])
    # What litellm sent back: the calls with their ids, and each tool's result under its call's id.
    assert [r.id for r in tool_results(recorded[2])] == [steps[0].tool_calls[0]["id"], steps[1].tool_calls[0]["id"]]
    assert [(r.name, r.data) for r in tool_results(recorded[2])] == [
        ("dataset_import", {"dataset": "greet@v3"}), ("train_start", {"job_id": "job_7"})]  # fmt: skip
