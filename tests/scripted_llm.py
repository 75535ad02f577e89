"""A scripted OpenAI-compatible LLM server on loopback: the one stand-in the tests use
(DESIGN §8). A real HTTP server (stdlib, a thread per request) that answers from a script
and records every request it got.

    with ScriptedLLM({"Greet ann": '{"score": 5, "reason": "exact"}'}, default="4") as llm:
        llm.url          # http://127.0.0.1:PORT/v1, for any OpenAI client
        llm.requests     # what it was asked: path, body, headers

The script is a mapping (or a list of pairs) from a substring of the last user message to
the reply (the first match wins, else `default`), or a callable that gets the request body.
A reply is the assistant's text, or `Failure(status, message)` for an HTTP error.

Endpoints: POST /v1/chat/completions (plain, and `stream: true` as SSE chunks ending with
`data: [DONE]`), POST /v1/completions, GET /v1/models, GET /health. With an api_key, the
/v1 routes want `Authorization: Bearer <key>` (401 otherwise), as vLLM does; /health never.

Also a command, standing in for an external server such as vLLM (vLLM's --api-key and
--served-model-name are honoured, other extra arguments ignored):

    python tests/scripted_llm.py --host 127.0.0.1 --port 8011 --model NAME [--reply TEXT]
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
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any

DEFAULT_REPLY = "OK"
STOP_TIMEOUT_S = 10.0
SHUTDOWN_CHECK_S = 0.05  # how often serve_forever looks for a shutdown request


@dataclass(frozen=True)
class Failure:
    """A scripted HTTP error instead of a completion."""

    status: int
    message: str = "scripted failure"


Reply = str | Failure
Script = Callable[[dict[str, Any]], Reply] | Mapping[str, Reply] | Sequence[tuple[str, Reply]]


def last_user_text(body: Mapping[str, Any]) -> str:
    """The last user message's text (string content, or the text parts of a content list)."""
    if isinstance(body.get("prompt"), str):
        return body["prompt"]
    for message in reversed(body.get("messages") or []):
        if isinstance(message, Mapping) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            return str(content or "")
    return ""


class ScriptedLLM:
    def __init__(self, script: Script | None = None, *, default: Reply = DEFAULT_REPLY, model: str = "scripted-judge",
                 host: str = "127.0.0.1", port: int = 0, api_key: str | None = None) -> None:  # fmt: skip
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
            return self.script(body)
        pairs = self.script.items() if isinstance(self.script, Mapping) else (self.script or ())
        text = last_user_text(body)
        return next((reply for key, reply in pairs if key in text), self.default)

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

        def _stream(self, body: dict[str, Any], reply: str, chat: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            ident, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", body.get("model") or llm.model
            pieces = [w + " " for w in reply.split(" ")]
            pieces[-1] = pieces[-1][:-1]
            if chat:
                chunks = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces if p]
                events = [_chunk(ident, model, {"delta": d, "finish_reason": None}) for d in chunks]
                events.append(_chunk(ident, model, {"delta": {}, "finish_reason": "stop"}))
            else:
                events = [_chunk(ident, model, {"text": p, "finish_reason": None}, "text_completion") for p in pieces if p]
                events.append(_chunk(ident, model, {"text": "", "finish_reason": "stop"}, "text_completion"))
            for event in events:
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


def _completion(body: dict[str, Any], reply: str, chat: bool, served: str) -> dict[str, Any]:
    prompt_tokens = len(last_user_text(body).split())
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(reply.split()),
             "total_tokens": prompt_tokens + len(reply.split())}  # fmt: skip
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
    if chat:
        choice["message"] = {"role": "assistant", "content": reply}
    else:
        choice["text"] = reply
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:12]}", "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()), "model": body.get("model") or served, "choices": [choice], "usage": usage}  # fmt: skip


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
