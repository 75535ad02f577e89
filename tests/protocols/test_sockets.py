"""Listening sockets: the connections the server accepts have TCP_NODELAY, so small JSON
responses are not held back ~40 ms by Nagle's algorithm waiting for a delayed ACK."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from forge_mcp.backends.serve import listen_socket
from forge_mcp.errors import ConfigError, ForgeError
from forge_mcp.protocols.http_server import _bind


def old_style(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # protocol 0: asyncio skips TCP_NODELAY
    sock.bind((host, port))
    return sock


async def accepted_nodelay(sock: socket.socket) -> int:
    """TCP_NODELAY on the server's side of a connection accepted by asyncio (as uvicorn does)."""
    seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted = writer.get_extra_info("socket")
        seen.set_result(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(on_connect, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        value = await asyncio.wait_for(seen, 10)
        writer.close()
    return value


@pytest.mark.parametrize(
    "make", [lambda: _bind("127.0.0.1", 0), lambda: listen_socket(0)], ids=["forge-http", "serving-endpoint"]
)
async def test_accepted_connections_have_tcp_nodelay(make: Callable[[], socket.socket]) -> None:
    assert await accepted_nodelay(make()) != 0


async def test_a_protocol_0_socket_would_not_get_it() -> None:
    """The control: what the check above tells apart."""
    assert await accepted_nodelay(old_style("127.0.0.1", 0)) == 0


def test_a_busy_port_is_a_clear_error() -> None:
    held = _bind("127.0.0.1", 0)
    held.listen()
    port = held.getsockname()[1]
    try:
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            _bind("127.0.0.1", port)
        with pytest.raises(ForgeError, match=f"port: {port} on 127.0.0.1 is not free"):
            listen_socket(port)
    finally:
        held.close()
