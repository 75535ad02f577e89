"""A scripted OpenAI-compatible LLM server on loopback: the one stand-in the tests use
(DESIGN §8), and the teacher of `make flywheel`. A real HTTP server (stdlib, a thread per
request) that answers from a script and records every request it got.

    with ScriptedLLM({"Greet ann": '{"score": 5, "reason": "exact"}'}, default="4") as llm:
        llm.url          # http://127.0.0.1:PORT/v1, for any OpenAI client
        llm.requests     # what it was asked: path, body, headers

The script is a mapping (or a list of pairs) from a substring of the last user message to
the reply (the first match wins, else `default`), or a callable that gets the request body
(returning None means `default`). A reply is the assistant's text, `Failure(status, message)`
for an HTTP error, `ToolCalls([Call(name, arguments), ...], text="")` for tool calls, or a
callable on the body that returns one of these (so a mapping's value may be a `Turns`).

Tool calls come back as OpenAI sends them. Plain: `message.tool_calls` with each call's
`arguments` a JSON string, `content` None unless `text` was given, `finish_reason` "tool_calls".
Streamed: a role chunk, the text's chunks, then per call a delta with index, id, type, name and
`arguments: ""` followed by deltas with pieces of the arguments, a final chunk with
`finish_reason` "tool_calls", then `data: [DONE]`. A Call's id is `call_<hex>`, fresh per
response, unless given. Usage (tokens counted as words) comes with every plain response, and
with a stream whose request asks `stream_options: {"include_usage": true}`: a last chunk with
`choices: []` and `usage` before [DONE] (then the other chunks carry `usage: null`), as OpenAI.
(/v1/completions answers a ToolCalls with its text.)

For an agent's conversation, `Turns` answers by the step: how many assistant messages already
follow the last user message (0: the first reply to the user, 1: after the first tool results
came back, ...), else its `default` (None: the server's). A step may be a callable on the
body, which reads what the tools returned with `tool_results(body)`; `offered_tools(body)`
names the tools the request offered:

    def train(body):  # step 1: train on the dataset the import returned
        dataset = tool_results(body, name="dataset_import")[-1].data["name"]
        return ToolCalls([Call("train_start", {"spec": {"dataset": dataset, "epochs": 1}})])

    script = {"Train a model": Turns([ToolCalls([Call("dataset_import", {"path": "greet.jsonl", "name": "greet"})]),
                                      train, "Training started."])}
    with ScriptedLLM(script, default="I can't help with that.") as llm: ...

LangChain's `ChatLiteLLM(model="openai/<name>", api_base=llm.url, api_key=...)` (langchain-litellm
0.11) works with it as it is: `.bind_tools` sends `tools`, invoke and stream both give an
AIMessage with `tool_calls`, and a stream asks `stream_options: {"include_usage": true}` by
default (`stream_options=` on the model overrides it), so a streamed AIMessage (chunks summed)
has `usage_metadata` too. Beware: without the server's usage chunk litellm makes up counts of
its own (a tokenizer's), so usage_metadata is there either way: check the numbers (these words).
Set LITELLM_LOCAL_MODEL_COST_MAP=True before importing litellm: else its import fetches a price
table from the network (and waits on retries where there is none).

Also a command, standing in for an external server such as vLLM (vLLM's --api-key and
--served-model-name are honoured, other extra arguments ignored):

    python -m forge_mcp.backends.scripted_llm --host 127.0.0.1 --port 8011 --model NAME [--reply TEXT]
"""

from __future__ import annotations

import argparse
import hmac
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

DEFAULT_REPLY = "OK"
STOP_TIMEOUT_S = 10.0
SHUTDOWN_CHECK_S = 0.05  # how often serve_forever looks for a shutdown request
ARGUMENT_PIECE_CHARS = 8  # a streamed call's arguments come in pieces this long, as tokens would


@dataclass(frozen=True)
class Failure:
    """A scripted HTTP error instead of a completion."""

    status: int
    message: str = "scripted failure"


@dataclass(frozen=True)
class Call:
    """One tool call: the function's name and its arguments (sent as a JSON string)."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None  # None: a fresh call_<hex> in each response


@dataclass(frozen=True)
class ToolCalls:
    """A scripted assistant turn that calls tools (with `text` as its content, if any)."""

    calls: Sequence[Call]
    text: str = ""


Reply = str | Failure | ToolCalls
Responder = Callable[[dict[str, Any]], "Reply | None"]
Script = Responder | Mapping[str, "Reply | Responder"] | Sequence[tuple[str, "Reply | Responder"]]


@dataclass(frozen=True)
class ToolResult:
    """What a tool returned, as a `role: "tool"` message of the request."""

    name: str  # the called function's name, from the assistant message that called it
    id: str  # the tool_call_id
    content: str

    @property
    def data(self) -> Any:
        """The content parsed as JSON (None if it is not JSON)."""
        try:
            return json.loads(self.content)
        except ValueError:
            return None


class Turns:
    """Replies by the step of an agent's turn: `steps[n]` answers when n assistant messages
    already follow the last user message; past the last step, `default` (None: the server's).
    A step is a reply or a callable on the request body that returns one."""

    def __init__(self, steps: Sequence[Reply | Responder], default: Reply | Responder | None = None) -> None:
        self.steps = list(steps)
        self.default = default

    def __call__(self, body: dict[str, Any]) -> Reply | None:
        n = step(body)
        return _resolve(self.steps[n] if n < len(self.steps) else self.default, body)


def _resolve(reply: Reply | Responder | None, body: dict[str, Any]) -> Reply | None:
    return reply(body) if callable(reply) else reply


def _turn(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The messages after the last user message (all of them when there is none)."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, Mapping)]
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    return messages[users[-1] + 1 :] if users else messages


def step(body: Mapping[str, Any]) -> int:
    """How many assistant messages follow the last user message: 0 for the first reply to it."""
    return sum(1 for m in _turn(body) if m.get("role") == "assistant")


def tool_results(body: Mapping[str, Any], name: str | None = None) -> list[ToolResult]:
    """The tool results since the last user message, in order (only `name`'s, if given)."""
    messages, called = _turn(body), {}
    for message in messages:
        for tc in message.get("tool_calls") or []:
            called[tc.get("id")] = (tc.get("function") or {}).get("name", "")
    results = [ToolResult(called.get(m.get("tool_call_id")) or str(m.get("name") or ""), str(m.get("tool_call_id") or ""),
                          _text(m.get("content")))
               for m in messages if m.get("role") == "tool"]  # fmt: skip
    return [r for r in results if name is None or r.name == name]


def offered_tools(body: Mapping[str, Any]) -> list[str]:
    """The names of the functions the request offered as tools."""
    return [str((t.get("function") or {}).get("name")) for t in body.get("tools") or [] if isinstance(t, Mapping)]


def _text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return str(content or "")


def last_user_text(body: Mapping[str, Any]) -> str:
    """The last user message's text (string content, or the text parts of a content list)."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return _text(message.get("content"))
    return ""


class ScriptedLLM:
    def __init__(self, script: Script | None = None, *, default: Reply | Responder = DEFAULT_REPLY,
                 model: str = "scripted-judge", host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None) -> None:  # fmt: skip
        self.script = script
        self.default = default
        self.model = model
        self.api_key = api_key
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (with /v1)."""
        return f"{self.base_url}/v1"

    def reply_for(self, body: dict[str, Any]) -> Reply:
        if callable(self.script):
            reply = self.script(body)
        else:
            pairs = self.script.items() if isinstance(self.script, Mapping) else (self.script or ())
            text = last_user_text(body)
            reply = _resolve(next((reply for key, reply in pairs if key in text), None), body)
        if reply is None:
            reply = _resolve(self.default, body)
        return DEFAULT_REPLY if reply is None else reply

    def record(self, path: str, body: Any, headers: Mapping[str, str]) -> None:
        with self._lock:
            self.requests.append({"path": path, "body": body, "headers": dict(headers)})

    def completions(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests so far."""
        with self._lock:
            return [r["body"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def start(self) -> ScriptedLLM:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(SHUTDOWN_CHECK_S,), name="scripted-llm",
                                        daemon=True)  # fmt: skip
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(STOP_TIMEOUT_S)
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever(SHUTDOWN_CHECK_S)
        finally:
            self._server.server_close()

    def __enter__(self) -> ScriptedLLM:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _handler(llm: ScriptedLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "scripted-llm/1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            return None

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0].rstrip("/")
            llm.record(path, None, self.headers)
            if path != "/health" and not self._authorised():
                return
            if path == "/health":
                self._json(200, {"status": "ok"})
            elif path in ("/v1/models", "/models"):
                self._json(200, {"object": "list", "data": [{"id": llm.model, "object": "model", "created": 0,
                                                              "owned_by": "scripted"}]})  # fmt: skip
            else:
                self._error(404, f"no route {path}", "not_found")

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0].rstrip("/")
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            except (ValueError, UnicodeDecodeError):
                llm.record(path, None, self.headers)
                self._error(400, "the body is not JSON", "invalid_request_error")
                return
            llm.record(path, body, self.headers)
            if not self._authorised():
                return
            if not isinstance(body, dict) or path not in ("/v1/chat/completions", "/v1/completions"):
                self._error(404 if isinstance(body, dict) else 400, f"no route {path}", "not_found")
                return
            reply = llm.reply_for(body)
            if isinstance(reply, Failure):
                self._error(reply.status, reply.message, "scripted_error")
                return
            chat = path.endswith("/chat/completions")
            if body.get("stream"):
                self._stream(body, reply, chat)
            else:
                self._json(200, _completion(body, reply, chat, llm.model))

        def _stream(self, body: dict[str, Any], reply: str | ToolCalls, chat: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in _events(body, reply, chat, llm.model):
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _authorised(self) -> bool:
            if llm.api_key is None:
                return True
            sent = self.headers.get("Authorization", "")
            if hmac.compare_digest(sent.encode(), f"Bearer {llm.api_key}".encode()):
                return True
            self._error(401, "missing or wrong API key", "invalid_api_key")
            return False

        def _json(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str) -> None:
            self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    return Handler


def _chunk(ident: str, model: str, choice: dict[str, Any], obj: str = "chat.completion.chunk") -> dict[str, Any]:
    return {"id": ident, "object": obj, "created": int(time.time()), "model": model, "choices": [{"index": 0, **choice}]}


def _words(text: str) -> list[str]:
    """The text in pieces that join back to it, a word (with the space before the next) each."""
    pieces = [w + " " for w in text.split(" ")]
    pieces[-1] = pieces[-1][:-1]
    return [p for p in pieces if p]


def _calls(reply: ToolCalls) -> list[dict[str, Any]]:
    """The reply's calls as OpenAI's message.tool_calls, each with its id."""
    return [{"id": c.id or f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(dict(c.arguments))}} for c in reply.calls]  # fmt: skip


def _usage(body: dict[str, Any], reply: str | ToolCalls) -> dict[str, int]:
    """Tokens counted roughly, as words: the last user message's, and the reply's."""
    prompt = len(last_user_text(body).split())
    if isinstance(reply, ToolCalls):
        completion = len(reply.text.split()) + sum(len(c.name.split()) + len(json.dumps(dict(c.arguments)).split())
                                                   for c in reply.calls)  # fmt: skip
    else:
        completion = len(reply.split())
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _events(body: dict[str, Any], reply: str | ToolCalls, chat: bool, served: str) -> list[dict[str, Any]]:
    """A streamed reply's chunks, as OpenAI sends them (the caller adds [DONE])."""
    ident, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", body.get("model") or served
    text = reply.text if isinstance(reply, ToolCalls) else reply
    if chat:
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}] + [{"content": p} for p in _words(text)]
        for index, call in enumerate(_calls(reply) if isinstance(reply, ToolCalls) else []):
            function, arguments = call["function"], call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                           "function": {"name": function["name"], "arguments": ""}}]})  # fmt: skip
            deltas += [{"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + ARGUMENT_PIECE_CHARS]}}]}
                       for i in range(0, len(arguments), ARGUMENT_PIECE_CHARS)]  # fmt: skip
        finish = "tool_calls" if isinstance(reply, ToolCalls) else "stop"
        events = [_chunk(ident, model, {"delta": d, "finish_reason": None}) for d in deltas]
        events.append(_chunk(ident, model, {"delta": {}, "finish_reason": finish}))
    else:
        events = [_chunk(ident, model, {"text": p, "finish_reason": None}, "text_completion") for p in _words(text)]
        events.append(_chunk(ident, model, {"text": "", "finish_reason": "stop"}, "text_completion"))
    if (body.get("stream_options") or {}).get("include_usage"):
        for event in events:
            event["usage"] = None
        events.append({**events[-1], "choices": [], "usage": _usage(body, reply)})
    return events


def _completion(body: dict[str, Any], reply: str | ToolCalls, chat: bool, served: str) -> dict[str, Any]:
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat and isinstance(reply, ToolCalls):
        choice["message"] = {"role": "assistant", "content": reply.text or None, "tool_calls": _calls(reply)}
        choice["finish_reason"] = "tool_calls"
    elif chat:
        choice["message"] = {"role": "assistant", "content": reply}
    else:
        choice["text"] = reply.text if isinstance(reply, ToolCalls) else reply
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model") or served, "choices": [choice],
            "usage": _usage(body, reply)}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A scripted OpenAI-compatible server (a test stand-in for an LLM).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--model", default="scripted")
    parser.add_argument("--served-model-name", nargs="+", default=None, help="The name(s) /v1/models lists (vLLM's flag)")
    parser.add_argument("--api-key", default=None, help="Bearer key the /v1 routes want (vLLM's flag)")
    parser.add_argument("--reply", default=DEFAULT_REPLY, help="What every completion answers")
    args, _ignored = parser.parse_known_args(argv)  # stands in for servers with many more options
    served = args.served_model_name[0] if args.served_model_name else args.model
    llm = ScriptedLLM(default=args.reply, model=served, host=args.host, port=args.port, api_key=args.api_key)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=llm._server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"scripted LLM serving {args.model} as {served} on {llm.url}", flush=True)
    llm.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
