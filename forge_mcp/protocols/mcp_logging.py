"""MCP log messages (`notifications/message`): the server's own warnings and jobs'
important events, at the level the client chose.

Up to 2025-11-25 a client picks a level with `logging/setLevel` for its whole
connection; from 2026-07-28 on each request opts in through its `_meta` log level and
messages ride that request's stream only. So:

- a warning logged while a client's request runs goes to that client, on that request;
- a warning logged in the background (the job engine, a service monitor) goes to the
  connections that set a level and may see everything (the local operator, admin keys);
- a job's state changes (queued, started, retried, succeeded, failed, canceled) go to the
  connections that set a level and may see the job, and, from 2026-07-28 on, to any
  request in flight about that job (job_wait).

Nothing is sent to a client that did not ask. Messages carry text and ids, never a
traceback.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from mcp.shared.exceptions import MCPDeprecationWarning
from mcp.types import EmptyResult, SetLevelRequestParams
from mcp.types.version import is_version_at_least

from forge_mcp.jobs.events import JobUpdate
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.states import JobState
from forge_mcp.protocols.http_limits import RepeatedRecordFilter
from forge_mcp.security.principal import Principal

# The logging capability is deprecated from 2026-07-28 on, yet still how clients of both
# eras receive log messages; the SDK warns on every use (ours and its own inner calls).
warnings.filterwarnings("ignore", message="The logging capability is deprecated", category=MCPDeprecationWarning)

MCP_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
REQUEST_SCOPED_VERSION = "2026-07-28"
SERVER_LOGGER = "forge_mcp"  # its records at WARNING and above are relayed
JOBS_LOGGER = "forge-mcp.jobs"
FLUSH_S = 1.0  # longest a tool call's result waits for its own log messages to go out


def mcp_level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "critical"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


def _rank(level: str) -> int:
    return MCP_LEVELS.index(level) if level in MCP_LEVELS else 0


def _may_see(principal: Principal, job: Job) -> bool:
    return principal.sees_everything or job.principal == principal.name


def job_event(job: Job) -> tuple[str, dict[str, Any]] | None:
    """(level, data) for a job state worth telling, or None."""
    name = f"job {job.id} ({job.kind})"
    if job.state is JobState.QUEUED:
        if job.attempt > 1 or job.reason:
            level, text = "warning", f"{name} will run again (attempt {job.attempt} of {job.max_attempts}): {job.reason}"
        else:
            level, text = "info", f"{name} queued"
    elif job.state is JobState.RUNNING:
        level, text = "info", f"{name} started (attempt {job.attempt} of {job.max_attempts})"
    elif job.state is JobState.SUCCEEDED:
        level, text = "notice", f"{name} succeeded"
    elif job.state is JobState.CANCELED:
        level, text = "warning", f"{name} was canceled"
    elif job.state is JobState.FAILED:
        level, text = "error", f"{name} failed: {job.error or job.reason or 'no reason given'}"
    else:
        return None
    data: dict[str, Any] = {"message": text, "job_id": job.id, "kind": job.kind, "state": job.state.value}
    if job.reason:
        data["reason"] = job.reason
    return level, data


@dataclass(eq=False)
class _Listener:
    """A connection that chose a level with logging/setLevel (2025 era)."""

    session: Any  # the setLevel request's ServerSession: without a request id it sends on the connection
    level: str
    principal: Principal

    async def send(self, level: str, data: Any, logger: str) -> None:
        await self.session.send_log_message(level=level, data=data, logger=logger)


@dataclass(eq=False)
class _Request:
    """A request in flight: its own messages ride its stream."""

    ctx: Any  # mcpserver Context
    principal: Principal
    listener: _Listener | None  # 2025 era: the connection's choice (None: it chose nothing)
    modern: bool
    job_id: str | None = None
    sent: set[str] = field(default_factory=set)
    pending: set[asyncio.Task[None]] = field(default_factory=set)  # messages not yet on its stream

    async def send(self, level: str, data: Any, logger: str) -> None:
        if not self.modern and (self.listener is None or _rank(level) < _rank(self.listener.level)):
            return
        # From 2026-07-28 on the SDK drops what is below the request's opted-in level.
        await self.ctx.log(level, data, logger_name=logger)


_current: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("forge_mcp_log_request", default=None)
_relaying: contextvars.ContextVar[bool] = contextvars.ContextVar("forge_mcp_log_relaying", default=False)


def _connection_of(session: Any) -> Any:
    # The SDK hands handlers a per-request session; the connection behind it is what a
    # 2025-era level belongs to (it has no public accessor in mcp 2.x).
    return getattr(session, "_connection", session)


class McpLogRelay:
    def __init__(self, *, auth_enabled: bool) -> None:
        self.auth_enabled = auth_enabled
        self._listeners: dict[Any, _Listener] = {}  # connection -> its choice, until it closes
        self._job_requests: set[_Request] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.handler = _RelayHandler(self)

    # -- wiring -------------------------------------------------------------------------

    def install(self) -> None:
        """Relay the server's own warnings (records of the forge_mcp loggers)."""
        logger = logging.getLogger(SERVER_LOGGER)
        if self.handler not in logger.handlers:
            logger.addHandler(self.handler)

    async def set_level(self, ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
        """The `logging/setLevel` handler (2025 era)."""
        from forge_mcp.protocols.mcp_server import current_principal

        self._loop = asyncio.get_running_loop()
        principal = current_principal(self.auth_enabled)
        connection = _connection_of(ctx.session)
        if connection not in self._listeners:
            teardown = getattr(connection, "exit_stack", None)  # unwound when the connection closes
            if teardown is not None:
                teardown.callback(self._listeners.pop, connection, None)
        self._listeners[connection] = _Listener(ctx.session, params.level, principal)
        return EmptyResult()

    def request(self, ctx: Any, principal: Principal, job_id: str | None = None) -> _RequestScope:
        """`async with` it while a tool call runs: its warnings (and, 2026 era, its job's events)
        go to it. Messages are sent by tasks of their own; the call's result waits (briefly) for
        the ones still on their way, or a job_wait that returns on SUCCEEDED would outrun its own
        'succeeded' message, which would then find the request's stream closed."""
        return _RequestScope(self, ctx, principal, job_id if isinstance(job_id, str) else None)

    # -- what is relayed ----------------------------------------------------------------

    def on_job_update(self, update: JobUpdate) -> None:
        if update.what != "state":
            return
        event = job_event(update.job)
        if event is None:
            return
        level, data = event
        for listener in list(self._listeners.values()):
            if _rank(level) >= _rank(listener.level) and _may_see(listener.principal, update.job):
                self._schedule(listener, level, data, JOBS_LOGGER)
        for request in list(self._job_requests):
            if request.job_id == update.job.id and _may_see(request.principal, update.job):
                self._schedule(request, level, data, JOBS_LOGGER)

    def on_record(self, record: logging.LogRecord) -> None:
        level = mcp_level(record.levelno)
        data = {"message": record.getMessage()}
        request = _current.get()
        if request is not None:
            self._schedule(request, level, data, record.name)
            return
        for listener in list(self._listeners.values()):
            if _rank(level) >= _rank(listener.level) and listener.principal.sees_everything:
                self._schedule(listener, level, data, record.name)

    def _schedule(self, target: _Listener | _Request, level: str, data: Any, logger: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        def start() -> None:
            task = loop.create_task(self._send(target, level, data, logger))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if isinstance(target, _Request):
                target.pending.add(task)
                task.add_done_callback(target.pending.discard)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            start()
        else:
            loop.call_soon_threadsafe(start)

    async def _send(self, target: _Listener | _Request, level: str, data: Any, logger: str) -> None:
        token = _relaying.set(True)
        try:
            await target.send(level, data, logger)
        except Exception:  # best effort: a client that went away misses its messages
            pass
        finally:
            _relaying.reset(token)


class _RequestScope:
    """McpLogRelay.request's context manager: a plain class, not a generator-based one, as it
    wraps every tool call."""

    __slots__ = ("relay", "ctx", "principal", "job_id", "_request", "_token")

    def __init__(self, relay: McpLogRelay, ctx: Any, principal: Principal, job_id: str | None) -> None:
        self.relay = relay
        self.ctx = ctx
        self.principal = principal
        self.job_id = job_id

    async def __aenter__(self) -> None:
        relay, ctx = self.relay, self.ctx
        relay._loop = asyncio.get_running_loop()
        version = ctx.protocol_version
        modern = version is not None and is_version_at_least(version, REQUEST_SCOPED_VERSION)
        listener = None if modern else relay._listeners.get(_connection_of(ctx.request_context.session))
        self._request = request = _Request(ctx, self.principal, listener, modern, self.job_id)
        self._token = _current.set(request)
        if modern and request.job_id:
            relay._job_requests.add(request)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        request = self._request
        try:
            if exc_type is None and request.pending:
                await asyncio.wait(set(request.pending), timeout=FLUSH_S)
        finally:
            _current.reset(self._token)
            self.relay._job_requests.discard(request)


class _RelayHandler(logging.Handler):
    def __init__(self, relay: McpLogRelay) -> None:
        super().__init__(level=logging.WARNING)
        self.relay = relay
        self.addFilter(RepeatedRecordFilter())  # a warning repeated in a loop reaches clients once per window

    def emit(self, record: logging.LogRecord) -> None:
        if _relaying.get():
            return  # a warning raised while sending one is not sent again
        try:
            self.relay.on_record(record)
        except Exception:
            self.handleError(record)
