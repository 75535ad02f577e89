"""DeferredApp: a request that arrives before the app is built waits for it; one that
arrives after a failed build gets a 503. The A2A card route's path is the SDK's."""

from __future__ import annotations

import asyncio

import httpx
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from forge_mcp.protocols.a2a_side import AGENT_CARD_PATH
from forge_mcp.protocols.deferred_asgi import DeferredApp


async def built(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("built")(scope, receive, send)


def client(app: DeferredApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")


async def test_an_early_request_waits_for_the_app() -> None:
    deferred = DeferredApp("A2A")
    async with client(deferred) as http:
        early = asyncio.create_task(http.get("/a2a"))
        await asyncio.sleep(0)
        assert not early.done()
        deferred.set(built)
        response = await asyncio.wait_for(early, 30)
        assert response.status_code == 200 and response.text == "built"


async def test_a_failed_build_answers_503_and_a_later_fail_changes_nothing() -> None:
    failed, ready = DeferredApp("A2A"), DeferredApp("A2A")
    failed.fail()
    ready.set(built)
    ready.fail()  # at shutdown: only requests still waiting would get a 503
    async with client(failed) as http:
        response = await http.get("/a2a")
        assert response.status_code == 503 and "A2A is unavailable" in response.json()["error"]
    async with client(ready) as http:
        assert (await http.get("/a2a")).text == "built"


def test_the_card_path_is_the_sdks() -> None:
    from a2a.utils.constants import AGENT_CARD_WELL_KNOWN_PATH

    assert AGENT_CARD_PATH == AGENT_CARD_WELL_KNOWN_PATH
