"""stdin for MCP over stdio, with the JSON depth limit applied before the SDK parses a line."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.shared.message import SessionMessage
from mcp.types import INVALID_REQUEST, ErrorData, JSONRPCError

from forge_mcp.protocols.json_depth import exceeds_depth, request_id, too_deep_message

log = logging.getLogger(__name__)


class DepthCheckedLines:
    """The lines of a text stream, as the SDK's stdio transport reads them; a line nested
    too deep is answered with a JSON-RPC error (its id read from the shallow levels) and
    skipped. A notification that deep has no one to answer and is only logged."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self._replies: Any = None
        self._ready = anyio.Event()

    def reply_through(self, write_stream: Any) -> None:
        self._replies = write_stream
        self._ready.set()

    def __aiter__(self) -> DepthCheckedLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = await self.source.readline()
            if not line:
                raise StopAsyncIteration
            if not exceeds_depth(line):
                return line
            await self._refuse(line)

    async def _refuse(self, line: str) -> None:
        message = too_deep_message()
        rid = request_id(line)
        if rid is None:
            log.warning("dropped a message from the client: %s", message)
            return
        await self._ready.wait()
        error = JSONRPCError(jsonrpc="2.0", id=rid, error=ErrorData(code=INVALID_REQUEST, message=message))
        await self._replies.send(SessionMessage(error))


@asynccontextmanager
async def stdio_lines() -> AsyncIterator[DepthCheckedLines]:
    """fd 0's lines, as UTF-8. While serving, fd 0 points at the null device (like the SDK
    does), so nothing else in the process reads the client's messages; restored after."""
    wire = os.dup(0)
    diversion = os.open(os.devnull, os.O_RDONLY)
    os.dup2(diversion, 0)
    os.close(diversion)
    # closefd=False: a worker thread may still be blocked reading it when we return.
    text = io.TextIOWrapper(os.fdopen(wire, "rb", closefd=False), encoding="utf-8", errors="replace")
    try:
        yield DepthCheckedLines(anyio.wrap_file(text))
    finally:
        os.dup2(wire, 0)
