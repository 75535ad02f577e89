"""Where A2A push notifications may go. Job status is the operator's data, so pushes go
only to hosts the operator listed (push_allowed_hosts); with none listed, push is off and
the agent card says so."""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable

PushUrlValidator = Callable[[str], Awaitable[bool]]


def allowlisted_push_urls(allowed_hosts: list[str]) -> PushUrlValidator:
    allowed = {host.lower() for host in allowed_hosts}

    async def validate(url: str) -> bool:
        try:
            parsed = urllib.parse.urlparse(url)
            host = (parsed.hostname or "").lower()
        except ValueError:
            return False
        return parsed.scheme in ("http", "https") and host in allowed

    return validate
