"""A local port forward over a target's SSH connection, as `ssh -L` makes one: 127.0.0.1:<a
free port> here reaches 127.0.0.1:<port> on the target. A service a job runs there (it
listens on the target's loopback only) is reached through it, and stays on loopback here.

Each accepted connection becomes one direct-tcpip channel of the SSH transport, pumped both
ways by a thread of its own until either side closes."""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("forge_mcp.compute")
CHUNK = 64 * 1024
SELECT_S = 0.5  # how often a pump looks whether the tunnel was closed


class SshTunnel:
    def __init__(self, transport: Callable[[], Any], remote_port: int, name: str) -> None:
        """`transport`: the target's current SSH transport (a reconnect gives a new one)."""
        self._transport = transport
        self.remote_port = remote_port
        self._name = name
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._closed = threading.Event()

    def start(self) -> int:
        """Listens on a free loopback port and returns it."""
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        threading.Thread(target=self._accept, name=f"tunnel-{self._name}", daemon=True).start()
        return int(self._listener.getsockname()[1])

    def close(self) -> None:
        """Stops listening now: the port refuses once this returns."""
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone would not)
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._forward, args=(conn, peer), daemon=True).start()

    def _forward(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            channel = self._transport().open_channel("direct-tcpip", ("127.0.0.1", self.remote_port), peer)
        except Exception as exc:  # the target is out of reach or refused: this connection fails, the next may not
            log.warning("tunnel to %s:%d: %s", self._name, self.remote_port, exc)
            conn.close()
            return
        try:
            while not self._closed.is_set():
                ready, _, _ = select.select([conn, channel], [], [], SELECT_S)
                if conn in ready:
                    data = conn.recv(CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in ready:
                    data = channel.recv(CHUNK)
                    if not data:
                        break
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            channel.close()
            conn.close()
