"""Small HTTP endpoints beside the two protocols, and the Host/Origin allowlist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from forge_mcp import __version__
from forge_mcp.metrics import Metrics
from forge_mcp.settings import Settings, is_loopback
from forge_mcp.store import Store

Endpoint = Callable[[Request], Awaitable[Response]]


def transport_security(settings: Settings) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", "127.0.0.1", "localhost", "[::1]"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::"):
        hosts += [f"{settings.host}:*", settings.host]
        origins += [f"http://{settings.host}:*", f"https://{settings.host}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + settings.allowed_hosts,
        allowed_origins=origins + settings.allowed_origins,
    )


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
        return Response(metrics.render(), media_type=metrics.content_type)

    return render
