"""API keys: created once and shown once, stored only as a SHA-256 hash.

Keys carry 256 bits of randomness, so a plain SHA-256 is enough: there is nothing to
brute-force, and verification stays one indexed lookup per request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.security.principal import SCOPES, Principal
from forge_mcp.store import Store

if TYPE_CHECKING:  # the mcp package costs half a second to import; job workers never need it
    from mcp.server.auth.provider import AccessToken

KEY_PREFIX = "forge_"
LAST_USED_RESOLUTION_S = 60.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiKeyInfo:
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    scopes = tuple(dict.fromkeys(s.strip() for s in items if s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if not scopes or unknown:
        raise InvalidArguments(
            f"scopes: {'unknown scope(s) ' + ', '.join(map(repr, unknown)) if unknown else 'none given'}; "
            f"choose from {', '.join(SCOPES)} (comma-separated)"
        )
    return scopes


class ApiKeys:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, scopes: str | list[str] | tuple[str, ...]) -> str:
        """Create a key and return it; this is the only time the key exists in clear."""
        if not _NAME.match(name):
            raise InvalidArguments(
                "name: use 1-64 characters from letters, digits, '_', '-', '.', starting with a letter or digit"
            )
        parsed = parse_scopes(scopes)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            await self._store.execute(
                "INSERT INTO api_keys (name, key_hash, key_prefix, scopes, created_at) VALUES (?, ?, ?, ?, ?)",
                (name, hash_key(key), key[: len(KEY_PREFIX) + 4], ",".join(parsed), time.time()),
            )
        except sqlite3.IntegrityError:
            raise Conflict(f"name: an API key named {name!r} already exists; pick another name") from None
        return key

    async def list(self) -> list[ApiKeyInfo]:
        rows = await self._store.fetchall("SELECT * FROM api_keys ORDER BY created_at")
        return [_info(row) for row in rows]

    async def revoke(self, name: str) -> None:
        changed = await self._store.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name)
        )
        if not changed:
            row = await self._store.fetchone("SELECT revoked_at FROM api_keys WHERE name = ?", (name,))
            if row is None:
                raise NotFound(f"name: no API key named {name!r}; see `forge-mcp keys list`")

    async def count_active(self) -> int:
        row = await self._store.fetchone("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")
        return int(row["n"]) if row else 0

    async def authenticate(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX):
            return None
        row = await self._store.fetchone(
            "SELECT name, key_hash, scopes FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (hash_key(key),)
        )
        if row is None or not secrets.compare_digest(row["key_hash"], hash_key(key)):
            return None
        now = time.time()
        # At most one write a minute per key: last-used is for humans, not an audit log.
        await self._store.execute(
            "UPDATE api_keys SET last_used_at = ? WHERE name = ? AND (last_used_at IS NULL OR last_used_at < ?)",
            (now, row["name"], now - LAST_USED_RESOLUTION_S),
        )
        return Principal(name=row["name"], scopes=frozenset(row["scopes"].split(",")))


class ApiKeyVerifier:
    """The MCP SDK's TokenVerifier protocol over our API keys (used for MCP and A2A alike)."""

    def __init__(self, keys: ApiKeys) -> None:
        self._keys = keys

    async def verify_token(self, token: str) -> AccessToken | None:
        principal = await self._keys.authenticate(token)
        if principal is None:
            return None
        from mcp.server.auth.provider import AccessToken

        return AccessToken(token=token, client_id=principal.name, scopes=sorted(principal.scopes))


def _info(row: sqlite3.Row) -> ApiKeyInfo:
    return ApiKeyInfo(
        name=row["name"],
        prefix=row["key_prefix"],
        scopes=tuple(row["scopes"].split(",")),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
