"""An a2a-sdk client for tests that waits as long as the work takes.

The SDK's own client (`create_client` without an httpx client) times a read out after 5 s.
A stream can be quieter than that between two updates on a loaded machine (CI runs two
workers on two cores), and the test then fails for nothing the server did wrong."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

READ_TIMEOUT_S = 600


@contextlib.asynccontextmanager
async def a2a_client(url: str, *, key: str | None = None, streaming: bool = True, **config: Any) -> AsyncIterator[Any]:
    """A connected client (`ClientConfig(streaming=..., **config)`), closed on exit."""
    import httpx
    from a2a.client import ClientConfig, create_client

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with httpx.AsyncClient(headers=headers, timeout=READ_TIMEOUT_S) as http:
        client = await create_client(url, client_config=ClientConfig(streaming=streaming, httpx_client=http, **config))
        try:
            yield client
        finally:
            await client.close()
