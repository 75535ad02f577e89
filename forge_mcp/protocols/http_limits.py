"""Connection-level limits for `forge-mcp serve`, below the ASGI app: how long a client
may take to send a request's head and its body, how many connections are held at once,
and a log that a flood cannot fill.

uvicorn closes idle keep-alive connections, but a connection that sends half a request
head (or nothing) is kept for ever, and each costs a file descriptor: a few thousand of
them used to exhaust the process's descriptors, after which accept() failed (EMFILE)
and logged a traceback per attempt. Here:

- a request head must be complete within `header_timeout_s` of the connection opening
  (or of the previous response), its body within `body_timeout_s` of the head; else the
  connection is closed (408 when part of a head had arrived);
- at most `max_connections` are held, kept below the descriptor limit (raised to the hard
  limit at start); past it, a new connection pushes out the oldest one still waiting for
  its request (an unfinished head or body, or an idle keep-alive), so a flood of
  half-open connections cannot lock out a client that sends its request;
- an error or warning logged again and again is written once, then as one line with a
  count at most every `LOG_REPEAT_WINDOW_S`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 1000
# Connections accepted per wake-up of the listening socket (asyncio accepts up to the
# backlog in one go, before any of them is looked at), and the kernel's queue length.
ACCEPT_BACKLOG = 128
# Descriptors kept free for everything else: one accept burst, the database, logs, pipes
# to job workers, model files.
FD_RESERVE = ACCEPT_BACKLOG + 128
MIN_CONNECTIONS = 16
LOG_REPEAT_WINDOW_S = 10.0
LOG_REPEAT_KEYS = 256
REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 26\r\n\r\nrequest not sent in time\r\n"
)


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return the soft limit in force."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 1 << 20, 1 << 16):
        if target == resource.RLIM_INFINITY or target <= soft:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def connection_cap(max_connections: int, open_file_limit: int) -> int:
    """Connections to hold at most: the setting, kept FD_RESERVE below the descriptor limit."""
    return max(MIN_CONNECTIONS, min(max_connections, open_file_limit - FD_RESERVE))


# A connection's phase. HEAD and BODY wait on the client (a deadline runs; the connection
# may be pushed out); BUSY waits on us (the app works, or streams its answer).
HEAD, BODY, BUSY, CLOSING = "head", "body", "busy", "closing"


class _Deadlines:
    """Mixed in before uvicorn's HTTP protocol (h11 or httptools: both keep the request in
    flight as `self.cycle` and tell when its body is complete with `cycle.more_body`)."""

    header_timeout_s: float = HEADER_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS

    # Set by uvicorn's protocol.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._timer: asyncio.TimerHandle | None = None
        self._phase = HEAD
        self._since = time.monotonic()
        self._partial = False
        self._seen_cycle: Any = None
        super().connection_made(transport)  # type: ignore[misc]
        if len(self.connections) > self.max_connections and not self._make_room():
            log.warning("connection limit (%d) reached and every connection is busy: refused one", self.max_connections)
            self._close()
            return
        self._arm(self.header_timeout_s)

    def data_received(self, data: bytes) -> None:
        if self._phase == HEAD:
            self._partial = True
        super().data_received(data)  # type: ignore[misc]
        self._track()

    def on_response_complete(self) -> None:
        previous = self.cycle
        super().on_response_complete()  # type: ignore[misc]
        if self._phase == CLOSING or self.transport.is_closing():
            return
        if self.cycle is previous:  # no pipelined request began: wait for the next head
            self._enter(HEAD, self.header_timeout_s)
            self._partial = False
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._phase = CLOSING
        super().connection_lost(exc)  # type: ignore[misc]

    # -- phases -------------------------------------------------------------------------

    def _track(self) -> None:
        cycle = self.cycle
        if cycle is None or self._phase == CLOSING:
            return
        if cycle is not self._seen_cycle:
            self._seen_cycle = cycle
            if cycle.more_body:
                self._enter(BODY, self.body_timeout_s)
            else:
                self._enter(BUSY)
        elif self._phase == BODY and not cycle.more_body:
            self._enter(BUSY)

    def _enter(self, phase: str, timeout: float | None = None) -> None:
        self._phase = phase
        self._since = time.monotonic()
        if timeout is None:
            self._disarm()
        else:
            self._arm(timeout)

    def _arm(self, timeout: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if self.transport.is_closing() or self._phase not in (HEAD, BODY):
            return
        if self._phase == HEAD and self._partial:
            self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self._close()

    def _close(self) -> None:
        self._disarm()
        self._phase = CLOSING
        self.transport.close()

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for its client; False if none is."""
        waiting = [c for c in self.connections if c is not self and getattr(c, "_phase", None) in (HEAD, BODY)]
        if not waiting:
            return False
        min(waiting, key=lambda c: c._since)._close()
        return True


def deadline_protocol(
    base: type[asyncio.Protocol], *, header_timeout_s: float, body_timeout_s: float, max_connections: int
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class `base` with the deadlines and the connection cap."""
    return type(
        f"Forge{base.__name__}",
        (_Deadlines, base),
        {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s, "max_connections": max_connections},
    )


class RepeatedRecordFilter(logging.Filter):
    """Lets the first of a run of identical warnings/errors through (same logger, level,
    message and exception type), then drops the repeats; the first one after
    `window_s` carries "(repeated N times in the last Xs)" and no traceback."""

    def __init__(
        self, window_s: float = LOG_REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic, keys: int = LOG_REPEAT_KEYS
    ) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self.keys = keys
        self._seen: OrderedDict[tuple[Any, ...], list[float]] = OrderedDict()  # key -> [last written, repeats since]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else None
        key = (record.name, record.levelno, str(record.msg)[:500], exc_type)
        now = self.clock()
        entry = self._seen.get(key)
        if entry is None:
            self._seen[key] = [now, 0]
            if len(self._seen) > self.keys:
                self._seen.popitem(last=False)
            return True
        self._seen.move_to_end(key)
        if now - entry[0] < self.window_s:
            entry[1] += 1
            return False
        repeats = int(entry[1])
        entry[0], entry[1] = now, 0
        if repeats:
            record.msg = f"{record.getMessage()} (repeated {repeats} times in the last {self.window_s:g}s)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def throttle_repeated_logs(logger_names: Iterable[str] = ("", "uvicorn", "uvicorn.error", "uvicorn.access")) -> None:
    """Put one RepeatedRecordFilter on every handler of these loggers (root included), so
    records from any logger that propagates there are covered."""
    shared = RepeatedRecordFilter()
    for name in logger_names:
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RepeatedRecordFilter) for f in handler.filters):
                handler.addFilter(shared)
