"""The MCP half of the HTTP app: Streamable HTTP at exactly /mcp/. Its route exists from the
start, but what answers it is built once the server is up: the MCP SDK's import is about a
third of start-up and the tools' schemas most of the rest, and /health needs neither.
Requests that arrive before wait for it (DeferredApp); if the build fails they get 503."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Mount

from forge_mcp.protocols.background_thread import run_in_background_thread
from forge_mcp.protocols.deferred_asgi import DeferredApp
from forge_mcp.protocols.http_routes import OnePath

if TYPE_CHECKING:
    from mcp.server.auth.provider import TokenVerifier
    from starlette.authentication import AuthenticationBackend

    from forge_mcp.app import ForgeApp
    from forge_mcp.protocols.mcp_server import ForgeMCPServer

log = logging.getLogger("forge_mcp.protocols.mcp_side")
MCP_PREFIX = "/mcp"


class McpSide:
    def __init__(self, app: ForgeApp) -> None:
        self._app = app
        self._gate = DeferredApp("MCP")
        self._serving: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._imported = asyncio.Event()

    def routes(self) -> list[BaseRoute]:
        return [Mount(MCP_PREFIX, app=self._gate)]

    async def start(self) -> None:
        """Build, then serve until stop(); returns once MCP requests are answered (or get 503)."""
        self._serving = asyncio.get_running_loop().create_task(self._serve(), name="forge-mcp-side")
        await self._ready.wait()

    async def bearer_backend(self, verifier: TokenVerifier) -> AuthenticationBackend:
        """The SDK's bearer-token backend, once the SDK is imported. Never imported here
        meanwhile: two threads importing the SDK at once deadlock on its circular imports."""
        await self._imported.wait()
        from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend

        return BearerAuthBackend(verifier)

    async def stop(self) -> None:
        """The session manager ends its sessions in the task that started it; a request still
        waiting for the build (or the build never started) gets a 503, not a hang."""
        self._stopping.set()
        self._gate.fail()
        if self._serving is not None:
            if not self._ready.is_set():
                self._serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._serving

    async def _serve(self) -> None:
        try:
            mcp = await self._built()
            if mcp is None:
                return
            from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

            async with mcp.session_manager.run():
                self._gate.set(OnePath(StreamableHTTPASGIApp(mcp.session_manager)))
                self._ready.set()
                await self._stopping.wait()
        finally:
            self._gate.fail()  # nothing once the app is set
            self._ready.set()

    async def _built(self) -> ForgeMCPServer | None:
        try:
            # The imports are most of the cost: in a thread, the event loop keeps answering meanwhile.
            try:
                await run_in_background_thread("forge-mcp-imports", _import_sdk)
            finally:
                self._imported.set()
            mcp = self._build()
            # So is building the tools' models and schemas.
            auth_enabled = self._app.settings.auth_enabled
            await run_in_background_thread("forge-mcp-tools", lambda: mcp.add_capability_tools(auth_enabled=auth_enabled))
        except Exception:
            log.exception("building the MCP side failed; MCP requests get 503")
            return None
        return mcp

    def _build(self) -> ForgeMCPServer:
        from mcp.server.transport_security import TransportSecuritySettings

        settings = self._app.settings
        mcp = self._app.mcp_server(over_http=True, tools_later=True)
        # Builds the session manager (body limit, transport security); its Starlette wrapper is not used.
        mcp.streamable_http_app(
            streamable_http_path="/",
            # HttpGate checks Host and Origin exactly on every route, /mcp/ included, before
            # anything else runs; the SDK's own check (a prefix match) would only disagree
            # with it, so it is off. Its Content-Type check for POST stays on.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            host=settings.host,
            max_request_body_size=settings.max_body_bytes,
        )
        return mcp


def _import_sdk() -> None:
    import mcp.server.auth.middleware.bearer_auth  # noqa: F401
    import mcp.server.streamable_http_manager  # noqa: F401
    import mcp.server.transport_security  # noqa: F401

    import forge_mcp.protocols.mcp_logging  # noqa: F401
    import forge_mcp.protocols.mcp_server  # noqa: F401
