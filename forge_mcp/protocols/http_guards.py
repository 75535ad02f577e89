"""ASGI middleware that every HTTP request passes: metrics, Host/Origin checks, the
access guard (authentication, rate limit, per-capability scope) for protected paths, and
the JSON nesting limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forge_mcp.metrics import Metrics
from forge_mcp.protocols.host_origin import HostOriginPolicy
from forge_mcp.protocols.json_depth import MAX_JSON_DEPTH, exceeds_depth, request_id, too_deep_message
from forge_mcp.security.principal import grants

ScopeResolver = Callable[[str, str, Any], str]  # (method, path, parsed JSON body or None) -> scope
JSONRPC_INVALID_REQUEST = -32600


def route_family(path: str) -> str:
    """A low-cardinality label for metrics."""
    if path.startswith("/mcp"):
        return "mcp"
    if path.startswith("/a2a"):
        return "a2a"
    if path.startswith("/.well-known/agent-card"):
        return "agent_card"
    if path in ("/health", "/metrics"):
        return path[1:]
    return "other"


class RequestMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        family = route_family(scope["path"])
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.metrics.http_requests.labels(route=family, method=scope["method"], status=str(status)).inc()
            self.metrics.http_latency.labels(route=family).observe(time.perf_counter() - started)


class HostOriginGuard:
    """DNS-rebinding protection for every route, /mcp/ included (the MCP SDK's own check,
    a prefix match, is switched off there: this one decides): a Host outside the
    allowlist gets 421, a browser Origin outside it 403. Host and port match exactly."""

    def __init__(self, app: ASGIApp, policy: HostOriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            if not self.policy.host_allowed(headers.get("host")):
                await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
                return
            if not self.policy.origin_allowed(headers.get("origin")):
                await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TokenBuckets:
    """Requests per principal per minute, refilled continuously."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when the request may proceed, else seconds until it could."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


class AccessGuard:
    """For paths under `prefixes`: 401 without a valid key (when auth is on), 429 past the
    principal's rate, 403 when the key lacks the scope the request needs. Reading the
    body to find the tool is bounded by the body limit applied before this guard."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefixes: tuple[str, ...],
        auth_enabled: bool,
        buckets: TokenBuckets | None,
        resolve_scope: ScopeResolver,
    ) -> None:
        self.app = app
        self.prefixes = prefixes
        self.auth_enabled = auth_enabled
        self.buckets = buckets
        self.resolve_scope = resolve_scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        user = scope.get("user")
        authenticated = isinstance(user, AuthenticatedUser)
        if self.auth_enabled and not authenticated:
            await _auth_error(401, "invalid_token", "a valid API key is required: Authorization: Bearer <key>")(
                scope, receive, send
            )
            return
        # Rate limits are per principal, that is per API key. Without auth (loopback only) every
        # caller is the one trusted local operator, as on stdio: a shared bucket would only make
        # concurrent local clients fail each other, so the local operator is not limited.
        if self.buckets is not None and authenticated:
            wait = self.buckets.take(user.display_name)
            if wait > 0:
                await _rate_limited(scope["path"], max(1, int(wait + 0.999)), self.buckets.per_minute)(
                    scope, receive, send
                )
                return
        if not self.auth_enabled:
            await self.app(scope, receive, send)
            return
        body, receive, _ = await _buffer_body(receive)
        needed = self.resolve_scope(scope["method"], scope["path"], _parse_json(body))
        if not grants(user.scopes, needed):
            await _auth_error(
                403, "insufficient_scope", f"this request needs the '{needed}' scope, which this API key lacks"
            )(scope, receive, send)
            return
        await self.app(scope, receive, send)


JSONRPC_PATHS = ("/mcp", "/a2a")  # /a2a/rest is REST
RATE_LIMITED_CODE = -32029  # JSON-RPC implementation-defined server error


def _rate_limited(path: str, retry_s: int, per_minute: int) -> Response:
    """429 with Retry-After. On the JSON-RPC endpoints the body is a JSON-RPC error, which
    MCP and A2A clients show as it is (any other body becomes 'Server returned an error')."""
    message = f"rate limit: this API key made more than {per_minute} requests in a minute; retry in {retry_s}s"
    headers = {"Retry-After": str(retry_s)}
    if path.startswith(JSONRPC_PATHS) and not path.startswith("/a2a/rest"):
        error = {"code": RATE_LIMITED_CODE, "message": message, "data": {"retry_after_s": retry_s}}
        return JSONResponse({"jsonrpc": "2.0", "id": None, "error": error}, status_code=429, headers=headers)
    return JSONResponse({"error": "rate_limited", "error_description": message}, status_code=429, headers=headers)


def _auth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"WWW-Authenticate": f'Bearer error="{error}", error_description="{description}"'},
    )


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive, bool]:
    """Read the whole request body and return it with a `receive` that replays it, and
    whether it came whole (False when the client left before the end)."""
    chunks: list[bytes] = []
    whole = False
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            whole = True
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay, whole


def _parse_json(body: bytes) -> Any:
    if not body or exceeds_depth(body):
        return None  # too deep: JsonDepthGuard answers it, once the caller is known
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


class JsonDepthGuard:
    """Request bodies nested deeper than MAX_JSON_DEPTH never reach a parser: each
    protocol gets its own invalid-request error (MCP: JSON-RPC -32600 with HTTP 400;
    A2A JSON-RPC: -32600 with HTTP 200, as the A2A SDK answers; A2A REST:
    400 INVALID_ARGUMENT). The body is already bounded by the body limit."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        body, replay, whole = await _buffer_body(receive)
        if not whole:
            return  # the client left (or the body deadline cut it off): no one to answer
        if exceeds_depth(body, self.limit):
            await _too_deep(scope["path"], body, too_deep_message(self.limit))(scope, receive, send)
            return
        await self.app(scope, replay, send)


def _too_deep(path: str, body: bytes, message: str) -> Response:
    if path.startswith("/a2a/rest"):
        details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_REQUEST",
                    "domain": "a2a-protocol.org", "metadata": {}}]  # fmt: skip
        return JSONResponse({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": message,
                                       "details": details}}, status_code=400)  # fmt: skip
    error = {"jsonrpc": "2.0", "id": request_id(body), "error": {"code": JSONRPC_INVALID_REQUEST, "message": message}}
    if path.startswith("/a2a"):
        return JSONResponse(error)
    if path.startswith("/mcp"):
        return JSONResponse(error, status_code=400)
    return JSONResponse({"error": "invalid_request", "error_description": message}, status_code=400)
