"""Small HTTP endpoints beside the two protocols, and the Host/Origin allowlist."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from forge_mcp import __version__
from forge_mcp.metrics import Metrics
from forge_mcp.protocols.host_origin import HostOriginPolicy
from forge_mcp.settings import Settings, is_loopback
from forge_mcp.store import Store

Endpoint = Callable[[Request], Awaitable[Response]]
# The card changes only when the server restarts with other settings or toolsets: caches
# may keep it a few minutes and then revalidate (ETag, or Last-Modified = the start).
AGENT_CARD_CACHE_CONTROL = "public, max-age=300"


def host_origin_policy(settings: Settings) -> HostOriginPolicy:
    """Loopback names on any port, the bind address when it is a name clients can use,
    and what the operator listed (allowed_hosts, allowed_origins), matched exactly."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
        hosts += [f"{settings.host}:*", settings.host]
        origins += [f"http://{settings.host}:*", f"https://{settings.host}:*"]
    return HostOriginPolicy(hosts + settings.allowed_hosts, origins + settings.allowed_origins)


class OnePath:
    """An ASGI app served at exactly one path below its Mount ("/" by default), anything else
    404 "Not Found": what a Starlette app holding a single Route does, without that app's own
    layers (error and exception handling, the router, their send wrappers) on every request.
    The MCP endpoint is mounted this way."""

    def __init__(self, app: ASGIApp, path: str = "/") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path, root = scope["path"], scope.get("root_path", "")
            if (path[len(root):] if root and path.startswith(root) else path) != self.path:
                await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def health_endpoint(store: Store) -> Endpoint:
    async def health(request: Request) -> Response:
        try:
            await store.fetchone("SELECT 1")
        except Exception:
            return JSONResponse({"status": "unhealthy", "database": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", "version": __version__, "database": "ok"})

    return health


def metrics_endpoint(metrics: Metrics) -> Endpoint:
    async def render(request: Request) -> Response:
        return Response(await metrics.scrape(), media_type=metrics.content_type)

    return render


def agent_card_routes(card: Any) -> list[Route]:
    """The A2A SDK's card route (ETag, If-None-Match), plus Cache-Control and
    Last-Modified, which it leaves to us, and If-Modified-Since."""
    from a2a.server.routes import create_agent_card_routes

    built = int(time.time())
    last_modified = formatdate(built, usegmt=True)

    def dated(endpoint: Endpoint) -> Endpoint:
        async def card_endpoint(request: Request) -> Response:
            response = await endpoint(request)
            response.headers["Last-Modified"] = last_modified
            since = request.headers.get("if-modified-since")
            if response.status_code == 200 and "if-none-match" not in request.headers and _not_after(built, since):
                keep = {k: v for k, v in response.headers.items() if k in ("etag", "cache-control", "last-modified")}
                return Response(status_code=304, headers=keep)
            return response

        return card_endpoint

    routes = create_agent_card_routes(card, cache_control=AGENT_CARD_CACHE_CONTROL)
    return [Route(r.path, dated(r.endpoint), methods=r.methods) for r in routes if isinstance(r, Route)]


def _not_after(built: int, since: str | None) -> bool:
    """Whether an If-Modified-Since date is at or after the card's (RFC 9110 13.1.3)."""
    if not since:
        return False
    try:
        return built <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
