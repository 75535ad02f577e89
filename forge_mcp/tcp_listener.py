"""The listening socket for every HTTP endpoint forge-mcp opens: the server itself and the
OpenAI-compatible endpoint of a served model."""

from __future__ import annotations

import socket


def tcp_listener(host: str, port: int) -> socket.socket:
    """Bound, not yet listening (the server calls listen). Raises OSError when the address is
    taken, with the socket closed. IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY on
    accepted connections only when the listening socket says it is TCP; without it small
    responses wait ~40 ms for the client's delayed ACK."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
