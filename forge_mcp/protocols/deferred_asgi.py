"""An ASGI app that exists before what it serves is built: requests that arrive early wait
for it. The A2A side (a2a-sdk, SQLAlchemy: about a third of start-up) is built this way once
the server is up, so /health answers without it."""

from __future__ import annotations

import asyncio

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class DeferredApp:
    """Stands in a route for an app that `set` provides later (once: an app serves one
    lifespan); `fail` turns waiting requests into 503s."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._app: ASGIApp | None = None
        self._ready = asyncio.Event()  # binds to a loop only when first awaited

    def set(self, app: ASGIApp) -> None:
        self._app = app
        self._ready.set()

    def fail(self) -> None:
        """Waiting requests, and later ones, get a 503, unless the app was already set."""
        if self._app is None:
            self._ready.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            await self._ready.wait()
        if self._app is None:
            response = JSONResponse({"error": f"{self.what} is unavailable; see the server log"}, status_code=503)
            await response(scope, receive, send)
            return
        await self._app(scope, receive, send)
