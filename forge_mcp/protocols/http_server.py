"""`forge-mcp serve`: checks that refuse an unsafe start, then uvicorn on one socket."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from forge_mcp import __version__
from forge_mcp.app import ForgeApp
from forge_mcp.errors import ConfigError
from forge_mcp.protocols.http_limits import (
    ACCEPT_BACKLOG,
    connection_cap,
    deadline_protocol,
    raise_open_file_limit,
    throttle_repeated_logs,
)
from forge_mcp.settings import Settings, is_loopback
from forge_mcp.tcp_listener import tcp_listener

log = logging.getLogger("forge_mcp.protocols.http_server")
GRACEFUL_SHUTDOWN_S = 5
READY_POLL_S = 0.02
# The garbage collector's young generation while serving. A request allocates thousands of
# short-lived containers (frames, tasks, models, dicts); at Python's default of 700 a
# collection ran every few requests, and with 50 MCP clients in flight each one walked all
# they held: 110-130 us of CPU per call, against 20 us at this size, where most of a
# request's objects are freed by reference counting before any collection sees them. Only
# cyclic garbage waits longer, which is a few MB at most.
GC_YOUNG_THRESHOLD = 20_000


class GracefulServer(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT once its graceful shutdown is done, so the process
    dies by the signal, which supervisors read as a crash. After a completed graceful
    shutdown we exit 0 instead."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def serve(settings: Settings, ready_file: Path | None = None) -> None:
    if not is_loopback(settings.host) and not settings.auth_enabled:
        raise ConfigError(
            f"refusing to serve on {settings.host} without authentication; drop --auth off "
            "(auth is required on any address other than loopback)"
        )
    sock = _bind(settings.host, settings.port)
    # With --port 0 the OS picks the port; the agent card must advertise the real one.
    app = ForgeApp(settings.model_copy(update={"port": sock.getsockname()[1]}))
    settings = app.settings
    if settings.auth_enabled and asyncio.run(_active_key_count(app)) == 0:
        sock.close()
        raise ConfigError(
            "authentication is on but no API key exists, so no client could connect. Create one first: "
            "forge-mcp keys create --name my-client --scopes read,train"
        )
    if settings.host in ("0.0.0.0", "::") and not settings.allowed_hosts:
        log.warning(
            "listening on all interfaces: requests are accepted only for loopback Host names until you list the "
            "names clients use in allowed_hosts (FORGE_ALLOWED_HOSTS=forge.lan:*)"
        )
    config = uvicorn.Config(
        app.http_app(),
        log_level=settings.log_level.lower(),
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **_connection_limits(settings),
    )
    throttle_repeated_logs()  # after uvicorn.Config, which sets up uvicorn's log handlers
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    asyncio.run(_run(GracefulServer(config), sock, settings.base_url, ready_file, app.listening.set))


def _connection_limits(settings: Settings) -> dict[str, Any]:
    """uvicorn's HTTP protocol with head and body deadlines and a connection cap below the
    open-file limit (raised to the hard limit first)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    cap = connection_cap(settings.max_connections, raise_open_file_limit())
    if cap < settings.max_connections:
        log.warning("holding at most %d connections: the open-file limit allows no more (max_connections %d)",
                    cap, settings.max_connections)  # fmt: skip
    protocol = deadline_protocol(
        AutoHTTPProtocol,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        max_connections=cap,
    )
    return {"http": protocol, "ws": "none", "backlog": ACCEPT_BACKLOG}


def _bind(host: str, port: int) -> socket.socket:
    try:
        return tcp_listener(host, port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port or --host") from None


async def _active_key_count(app: ForgeApp) -> int:
    async with app.running(engine=False):
        return await app.api_keys.count_active()


async def _run(
    server: uvicorn.Server, sock: socket.socket, url: str, ready_file: Path | None, on_listening: Callable[[], None]
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(READY_POLL_S)
    if server.started:
        print(f"forge-mcp {__version__} listening on {url} (MCP {url}/mcp/, A2A {url}/a2a)", file=sys.stderr)
        if ready_file is not None:
            ready_file.write_text(url)
        on_listening()  # the app finishes its start-up (MCP tools, the A2A side) from here
    await serving
