"""The OpenAI-compatible surface in front of every in-process engine, here with the real
transformers engine on the tiny model: auth, request validation that names the field,
plain and streamed answers that agree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from forge_mcp.serving.openai_app import openai_app

KEY = "k-123"
QUESTION = [{"role": "user", "content": "What colour is the apple?"}]


@pytest.fixture(scope="module")
def client(tiny_model: Path) -> Iterator[TestClient]:
    from forge_mcp.backends.serve_engines import TransformersEngine

    engine = TransformersEngine(tiny_model, None, "tiny@v1")
    with TestClient(openai_app(engine, "tiny@v1", KEY)) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {KEY}"}


def test_health_needs_no_key_but_everything_else_does(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "model": "tiny@v1"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
        reply = client.get("/v1/models", headers=headers)
        assert reply.status_code == 401 and "Bearer" in reply.json()["error"]["message"]
    assert [m["id"] for m in client.get("/v1/models", headers=AUTH).json()["data"]] == ["tiny@v1"]


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"model": "tiny@v1"}, 400, "'messages' is required"),
    ({"messages": QUESTION, "temperature": 5}, 400, "'temperature'"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "'messages.0.role'"),
    ({"messages": QUESTION, "max_tokens": 0}, 400, "'max_tokens'"),
    ({"messages": QUESTION, "model": "gpt-4"}, 404, "serves 'tiny@v1' only"),
])  # fmt: skip
def test_bad_requests_are_refused_naming_the_field(client: TestClient, body: dict, status: int, needle: str) -> None:
    reply = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert reply.status_code == status and needle in reply.json()["error"]["message"], reply.json()


def test_a_body_that_is_not_json_is_refused(client: TestClient) -> None:
    reply = client.post("/v1/chat/completions", content=b"{nope", headers=AUTH)
    assert reply.status_code == 400 and reply.json()["error"]["message"] == "the body is not JSON"


def test_the_model_answers_and_the_stream_spells_the_same_answer(client: TestClient) -> None:
    plain = client.post("/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 12}, headers=AUTH).json()
    assert plain["object"] == "chat.completion" and plain["model"] == "tiny@v1"
    text = plain["choices"][0]["message"]["content"]
    assert text == "The apple is orange."  # the tiny model's world fact, greedy
    assert plain["choices"][0]["finish_reason"] == "stop" and plain["usage"]["completion_tokens"] > 0
    with client.stream("POST", "/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 12, "stream": True},
                       headers=AUTH) as streamed:  # fmt: skip
        lines = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == text
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_stop_strings_and_length_limits_end_the_answer(client: TestClient) -> None:
    stopped = client.post("/v1/chat/completions", json={"messages": QUESTION, "stop": ["orange"]}, headers=AUTH).json()
    assert stopped["choices"][0]["message"]["content"] == "The apple is "
    short = client.post("/v1/chat/completions", json={"messages": QUESTION, "max_tokens": 2}, headers=AUTH).json()
    assert short["choices"][0]["finish_reason"] == "length" and short["usage"]["completion_tokens"] == 2
