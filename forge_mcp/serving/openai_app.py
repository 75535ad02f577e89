"""The OpenAI-compatible HTTP surface every in-process engine is served behind:
`POST /v1/chat/completions` (JSON, or server-sent events with `stream: true`),
`GET /v1/models` and `GET /health`. Bearer auth with the service's own key.

The engine is anything with `chat(request) -> dict` and `stream(request) -> iterator of
chunk dicts` in OpenAI's shapes; it runs in a worker thread, one request at a time (a
small model on a CPU gains nothing from interleaving, and llama.cpp's context is not
shareable)."""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, ValidationError
from starlette.applications import Starlette
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from forge_mcp.errors import describe_validation_error

MAX_BODY_BYTES = 1 << 20


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=200_000)


class ChatRequest(BaseModel):
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    max_tokens: int | None = Field(None, ge=1, le=32_768)
    max_completion_tokens: int | None = Field(None, ge=1, le=32_768)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    @property
    def limit(self) -> int:
        return self.max_completion_tokens or self.max_tokens or 256

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class ChatEngine(Protocol):
    def chat(self, request: ChatRequest) -> dict[str, Any]: ...

    def stream(self, request: ChatRequest) -> Iterator[dict[str, Any]]: ...


def openai_app(engine: ChatEngine, model_id: str, api_key: str, created: int | None = None) -> Starlette:
    busy = threading.Lock()  # one generation at a time; others wait their turn
    created = created or int(time.time())

    def refused(request: Request) -> Response | None:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(token.encode(), api_key.encode()):
            return _error(401, "invalid_api_key", "missing or wrong API key: send 'Authorization: Bearer <api_key>' "
                                                  "with the key serve_start returned")  # fmt: skip
        return None

    def answer(chat: ChatRequest) -> dict[str, Any]:
        with busy:
            return engine.chat(chat)

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": model_id})

    async def models(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        return JSONResponse({"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                                         "owned_by": "forge-mcp"}]})  # fmt: skip

    async def completions(request: Request) -> Response:
        if (denied := refused(request)) is not None:
            return denied
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "request_too_large", f"the request body is over {MAX_BODY_BYTES} bytes")
        try:
            chat = ChatRequest.model_validate(json.loads(body or b"null"))
        except (ValueError, ValidationError) as exc:
            detail = describe_validation_error(exc, "a chat completion request", "a field") if isinstance(exc, ValidationError) else "the body is not JSON"
            return _error(400, "invalid_request_error", detail)
        if chat.model not in (None, model_id):
            return _error(404, "model_not_found", f"this endpoint serves {model_id!r} only; GET /v1/models lists it")
        if not chat.stream:
            return JSONResponse(await run_in_threadpool(answer, chat))

        def events() -> Iterator[str]:
            busy.acquire()
            try:  # a client that goes away closes this generator, which releases the engine
                for piece in engine.stream(chat):
                    yield f"data: {json.dumps(piece)}\n\n"
            finally:
                busy.release()
            yield "data: [DONE]\n\n"

        return StreamingResponse(iterate_in_threadpool(events()), media_type="text/event-stream")

    return Starlette(routes=[
        Route("/health", health), Route("/v1/models", models),
        Route("/v1/chat/completions", completions, methods=["POST"]),
    ])  # fmt: skip


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"error": {"message": message, "type": code, "code": code}}, status_code=status)


def completion(model_id: str, text: str, prompt_tokens: int, completion_tokens: int, finish: str) -> dict[str, Any]:
    """A chat.completion object, for engines that produce plain text."""
    return {"id": f"chatcmpl-{time.time_ns():x}", "object": "chat.completion", "created": int(time.time()), "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}  # fmt: skip


def chunk(model_id: str, chunk_id: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """A chat.completion.chunk object, for engines that stream plain text."""
    return {"id": chunk_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model_id,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip
