"""The MCP log relay without a transport: whose warnings reach which client."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from mcp.types import SetLevelRequestParams

from forge_mcp.protocols.mcp_logging import McpLogRelay
from forge_mcp.security.principal import Principal

pytestmark = pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")


class FakeSession:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send_log_message(self, level: str, data: Any, logger: str | None = None) -> None:
        self.sent.append((level, data))


class FakeContext:
    def __init__(self, version: str, session: FakeSession) -> None:
        self.protocol_version = version
        self.request_context = SimpleNamespace(session=session)
        self.logged: list[tuple[str, Any]] = []

    async def log(self, level: str, data: Any, logger_name: str | None = None) -> None:
        self.logged.append((level, data))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def listen(relay: McpLogRelay, level: str) -> FakeSession:
    session = FakeSession()
    await relay.set_level(SimpleNamespace(session=session), SetLevelRequestParams(level=level))
    return session


async def test_a_warning_during_a_request_goes_to_that_request_only() -> None:
    relay = McpLogRelay(auth_enabled=False)
    relay.install()
    other = await listen(relay, "debug")
    ctx = FakeContext("2026-07-28", FakeSession())
    try:
        async with relay.request(ctx, Principal.local()):
            logging.getLogger("forge_mcp.tests").warning("disk %s almost full", "/data")
        # The request's own messages are out by the time its call returns: no settling needed.
        logged = list(ctx.logged)
        await settle()
    finally:
        logging.getLogger("forge_mcp").removeHandler(relay.handler)
    assert logged == [("warning", {"message": "disk /data almost full"})]
    assert ctx.logged == logged
    assert other.sent == []


async def test_background_warnings_reach_only_connections_that_see_everything(monkeypatch: Any) -> None:
    relay = McpLogRelay(auth_enabled=True)
    relay.install()
    monkeypatch.setattr("forge_mcp.protocols.mcp_server.current_principal", lambda auth: Principal("root", frozenset({"admin"})))
    admin = await listen(relay, "warning")
    picky = await listen(relay, "error")
    monkeypatch.setattr("forge_mcp.protocols.mcp_server.current_principal", lambda auth: Principal("bob", frozenset({"read"})))
    reader = await listen(relay, "debug")
    try:
        logging.getLogger("forge_mcp.jobs").warning("a worker was lost")
        logging.getLogger("forge_mcp.jobs").info("routine")
        await settle()
    finally:
        logging.getLogger("forge_mcp").removeHandler(relay.handler)
    assert admin.sent == [("warning", {"message": "a worker was lost"})]
    assert picky.sent == [] and reader.sent == []


async def test_a_connection_that_closes_is_forgotten() -> None:
    from mcp import Client

    from forge_mcp.protocols.mcp_server import ForgeMCPServer

    relay = McpLogRelay(auth_enabled=False)
    server = ForgeMCPServer(None, relay, name="forge-test")  # type: ignore[arg-type]
    async with Client(server, mode="legacy") as client:
        await client.set_logging_level("info")
        await client.set_logging_level("debug")
        assert [listener.level for listener in relay._listeners.values()] == ["debug"]
    assert relay._listeners == {}
