"""Exact Host and Origin matching for DNS-rebinding protection.

A pattern is `host`, `host:PORT` or `host:*`; for origins `scheme://` goes in front. The
host name is compared whole and case-insensitively (IPv6 in brackets, `[::1]`), the port
exactly: `*` stands for any port number (digits only) and a pattern without a port
matches only a header without one. So `localhost:*` accepts `localhost:8765` but neither
`localhost:8765.evil.example` nor `localhost.evil.example:80`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from forge_mcp.errors import ConfigError

ANY_PORT = "*"
MAX_PORT = 65535
# A registered name or IPv4 address, or an IPv6 literal in brackets; then an optional port.
_AUTHORITY = re.compile(
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?::(?P<port>[0-9]{1,5}|\*))?"
)
_ORIGIN = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<authority>[^/?#@\s]+)")


@dataclass(frozen=True)
class _Pattern:
    scheme: str | None  # origins only
    host: str  # lower case; IPv6 keeps its brackets
    port: str | None  # None: no port; "*": any port; else the number as written without leading zeros


def _split(authority: str, *, wildcard: bool) -> tuple[str, str | None] | None:
    match = _AUTHORITY.fullmatch(authority)
    if match is None:
        return None
    host, port = match["host"].lower(), match["port"]
    if port == ANY_PORT:
        return (host, ANY_PORT) if wildcard else None
    if port is not None:
        if int(port) > MAX_PORT:
            return None
        port = str(int(port))
    return host, port


def _parse(value: str, *, origin: bool, wildcard: bool) -> _Pattern | None:
    if origin:
        match = _ORIGIN.fullmatch(value)
        if match is None:
            return None
        scheme, authority = match["scheme"].lower(), match["authority"]
    else:
        scheme, authority = None, value
    parts = _split(authority, wildcard=wildcard)
    return None if parts is None else _Pattern(scheme, *parts)


def _patterns(values: Iterable[str], *, origin: bool, setting: str) -> tuple[_Pattern, ...]:
    parsed = []
    for value in values:
        pattern = _parse(value.strip(), origin=origin, wildcard=True)
        if pattern is None:
            form = "scheme://host, scheme://host:PORT or scheme://host:*" if origin else "host, host:PORT or host:*"
            raise ConfigError(f"{setting} entry {value!r} is not of the form {form}")
        parsed.append(pattern)
    return tuple(parsed)


class HostOriginPolicy:
    """Which Host and Origin headers the server answers to."""

    def __init__(self, allowed_hosts: Iterable[str], allowed_origins: Iterable[str]) -> None:
        self.hosts = _patterns(allowed_hosts, origin=False, setting="allowed_hosts")
        self.origins = _patterns(allowed_origins, origin=True, setting="allowed_origins")

    def host_allowed(self, header: str | None) -> bool:
        """A request must name one of our hosts (a missing Host is refused)."""
        seen = _parse(header, origin=False, wildcard=False) if header else None
        return seen is not None and any(_matches(p, seen) for p in self.hosts)

    def origin_allowed(self, header: str | None) -> bool:
        """No Origin (not a browser, or same-origin) passes; any other must be listed."""
        if header is None:
            return True
        seen = _parse(header, origin=True, wildcard=False)
        return seen is not None and any(_matches(p, seen) for p in self.origins)


def _matches(pattern: _Pattern, seen: _Pattern) -> bool:
    if pattern.scheme != seen.scheme or pattern.host != seen.host:
        return False
    if pattern.port == ANY_PORT:
        return seen.port is not None
    return pattern.port == seen.port
