"""The one ASGI middleware every HTTP request passes (HttpGate): metrics, Host/Origin
checks, the body limit, authentication, the access guard (rate limit, per-capability
scope) for protected paths, and the JSON nesting limit."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, UnauthenticatedUser
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from forge_mcp.metrics import Metrics
from forge_mcp.protocols.host_origin import HostOriginPolicy
from forge_mcp.protocols.json_depth import MAX_JSON_DEPTH, exceeds_depth, request_id, too_deep_message
from forge_mcp.security.principal import grants

ScopeResolver = Callable[[str, str, Any], str]  # (method, path, parsed JSON body or None) -> scope
JSONRPC_INVALID_REQUEST = -32600
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})  # not checked for nesting depth


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


class _NotYetAuthenticated:
    """What an authenticated user is before the first authentication: nobody is one."""


class HttpGate:
    """Every check an HTTP request passes, in one ASGI layer and in this order:

    1. metrics (requests by route family, method and status; latency) around all of it;
    2. Host and Origin, on every route, /mcp/ included (DNS-rebinding protection; the MCP
       SDK's own check, a prefix match, is switched off there: this one decides): a Host
       outside the allowlist gets 421, a browser Origin outside it 403. Host and port match
       exactly;
    3. the body limit: 413 when the declared or the received body is over `max_body_bytes`.
       The body is read here, once, and replayed to the app;
    4. with `authenticate` (auth on), for paths under `prefixes`, the API key: scope["user"]
       and scope["auth"] as Starlette's AuthenticationMiddleware sets them (the A2A side reads
       them), and the MCP SDK's auth context for the request (its get_access_token).
       `authenticate` gives the backend at the first such request, once the MCP SDK is
       imported (a third of start-up, which /health does not wait for; with auth off, on
       loopback, nothing here needs it);
    5. for paths under `prefixes`: 401 without a valid key (when auth is on), 429 past the
       principal's rate, 403 when the key lacks the scope the request needs;
    6. bodies nested deeper than `depth_limit` never reach a parser: each protocol gets its
       own invalid-request error (MCP: JSON-RPC -32600 with HTTP 400; A2A JSON-RPC: -32600
       with HTTP 200, as the A2A SDK answers; A2A REST: 400 INVALID_ARGUMENT).

    One layer, not six: each middleware layer costs every request a coroutine frame, and
    most a send or receive wrapper and a header parse; for a small MCP call that was a
    measurable share of the server's CPU."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        policy: HostOriginPolicy,
        max_body_bytes: int,
        authenticate: Callable[[], Awaitable[AuthenticationBackend]] | None,
        prefixes: tuple[str, ...],
        buckets: TokenBuckets | None,
        resolve_scope: ScopeResolver,
        depth_limit: int = MAX_JSON_DEPTH,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self.make_backend = authenticate
        self.auth_enabled = authenticate is not None
        self._backend: AuthenticationBackend | None = None
        self._user_class: type = _NotYetAuthenticated  # the SDK's AuthenticatedUser once a backend exists
        self._auth_context: Any = None
        self.prefixes = prefixes
        self.buckets = buckets
        self.resolve_scope = resolve_scope
        self.depth_limit = depth_limit

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

        try:
            await self._checked(scope, receive, send_with_status)
        finally:
            self.metrics.count_http_request(
                route_family(scope["path"]), scope["method"], status, time.perf_counter() - started
            )

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        if not self.policy.host_allowed(headers.get("host")):
            await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
            return
        if not self.policy.origin_allowed(headers.get("origin")):
            await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
            return
        if _declared_length(headers) > self.max_body_bytes:
            await Response("Request body too large", status_code=413)(scope, receive, send)
            return
        body, replay, whole = await _buffer_body(receive, self.max_body_bytes)
        if body is None:
            await Response("Request body too large", status_code=413)(scope, receive, send)
            return
        protected = scope["path"].startswith(self.prefixes)
        if self.auth_enabled and protected:
            refusal = await self._authenticate(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        user = scope.get("user")
        if protected:
            refusal = self._access(scope, user, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        if scope["method"] not in BODYLESS_METHODS:
            if not whole:
                return  # the client left (or the body deadline cut it off): no one to answer
            if exceeds_depth(body, self.depth_limit):
                await _too_deep(scope["path"], body, too_deep_message(self.depth_limit))(scope, receive, send)
                return
        if isinstance(user, self._user_class):
            token = self._auth_context.set(user)
            try:
                await self.app(scope, replay, send)
            finally:
                self._auth_context.reset(token)
            return
        await self.app(scope, replay, send)

    async def _authenticate(self, scope: Scope) -> Response | None:
        """Set scope["auth"] and scope["user"] from the Authorization header, as Starlette's
        AuthenticationMiddleware does (a backend's AuthenticationError is a 400)."""
        try:
            backend = await self._auth_backend()
            result = await backend.authenticate(HTTPConnection(scope))
        except AuthenticationError as exc:
            return PlainTextResponse(str(exc), status_code=400)
        scope["auth"], scope["user"] = result if result is not None else (AuthCredentials(), UnauthenticatedUser())
        return None

    async def _auth_backend(self) -> AuthenticationBackend:
        if self._backend is None:
            assert self.make_backend is not None
            backend = await self.make_backend()  # the SDK is imported once this returns
            from mcp.server.auth.middleware.auth_context import auth_context_var
            from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

            self._user_class, self._auth_context, self._backend = AuthenticatedUser, auth_context_var, backend
        return self._backend

    def _access(self, scope: Scope, user: Any, body: bytes) -> Response | None:
        """A protected path's refusal (401, 429, 403), or None when the request may go on."""
        authenticated = isinstance(user, self._user_class)
        if self.auth_enabled and not authenticated:
            return _auth_error(401, "invalid_token", "a valid API key is required: Authorization: Bearer <key>")
        # Rate limits are per principal, that is per API key. Without auth (loopback only) every
        # caller is the one trusted local operator, as on stdio: a shared bucket would only make
        # concurrent local clients fail each other, so the local operator is not limited.
        if self.buckets is not None and authenticated:
            wait = self.buckets.take(user.display_name)
            if wait > 0:
                return _rate_limited(scope["path"], max(1, int(wait + 0.999)), self.buckets.per_minute)
        if not self.auth_enabled:
            return None
        needed = self.resolve_scope(scope["method"], scope["path"], _parse_json(body, self.depth_limit))
        if not grants(user.scopes, needed):
            return _auth_error(
                403, "insufficient_scope", f"this request needs the '{needed}' scope, which this API key lacks"
            )
        return None


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


async def _buffer_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive, bool]:
    """Read the request body and return it with a `receive` that replays what was read, and
    whether it came whole (False when the client left before the end). The body is None
    when it grew past `limit`."""
    chunks: list[bytes] = []
    size = 0
    whole = False
    trailing: Message | None = None
    read_any = False
    while True:
        message = await receive()
        if message["type"] != "http.request":
            trailing = message  # the client left: the app hears it too
            break
        read_any = True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive, False
        chunks.append(chunk)
        if not message.get("more_body", False):
            whole = True
            break
    body = b"".join(chunks)
    queued: list[Message] = []
    if read_any:
        queued.append({"type": "http.request", "body": body, "more_body": not whole})
    if trailing is not None:
        queued.append(trailing)
    queued.reverse()

    async def replay() -> Message:
        if queued:
            return queued.pop()
        return await receive()

    return body, replay, whole


def _declared_length(headers: Headers) -> int:
    """The Content-Length a request declares (0 when none, or not a number)."""
    try:
        return int(headers.get("content-length") or 0)
    except ValueError:
        return 0


def _parse_json(body: bytes, depth_limit: int) -> Any:
    if not body or exceeds_depth(body, depth_limit):
        return None  # too deep: answered as such once the caller is known
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


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
