"""API keys: shown once, stored as a hash, scoped, revocable."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.security.api_keys import ApiKeys, ApiKeyVerifier, hash_key
from forge_mcp.store import Store


@pytest.fixture
async def keys(tmp_path: Path):  # noqa: ANN201
    async with Store(tmp_path / "forge.db") as store:
        yield ApiKeys(store)


async def test_key_is_stored_only_as_its_hash(keys: ApiKeys, tmp_path: Path) -> None:
    key = await keys.create("laptop", "read,train")
    assert key.startswith("forge_") and len(key) > 40
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("forge.db*"))
    assert key.encode() not in raw
    assert hash_key(key).encode() in raw


async def test_authenticate_returns_the_principal(keys: ApiKeys) -> None:
    key = await keys.create("laptop", ["read", "train"])
    principal = await keys.authenticate(key)
    assert principal is not None and principal.name == "laptop"
    assert principal.scopes == frozenset({"read", "train"})
    assert await keys.authenticate(key + "x") is None
    assert await keys.authenticate("not-a-forge-key") is None


async def test_revoked_key_no_longer_authenticates(keys: ApiKeys) -> None:
    key = await keys.create("laptop", "read")
    await keys.revoke("laptop")
    assert await keys.authenticate(key) is None
    [info] = await keys.list()
    assert not info.active and info.prefix == key[:10]
    assert await keys.count_active() == 0


async def test_duplicate_names_unknown_scopes_and_bad_names_are_refused(keys: ApiKeys) -> None:
    await keys.create("laptop", "read")
    with pytest.raises(Conflict, match="already exists"):
        await keys.create("laptop", "read")
    with pytest.raises(InvalidArguments, match="unknown scope\\(s\\) 'root'; choose from read, train, admin"):
        await keys.create("other", "read,root")
    with pytest.raises(InvalidArguments, match="none given"):
        await keys.create("other", "")
    with pytest.raises(InvalidArguments, match="name"):
        await keys.create("has space", "read")
    with pytest.raises(NotFound, match="no API key named 'ghost'"):
        await keys.revoke("ghost")


async def test_verifier_speaks_the_mcp_sdk_protocol(keys: ApiKeys) -> None:
    key = await keys.create("cursor", "read")
    token = await ApiKeyVerifier(keys).verify_token(key)
    assert token is not None and token.client_id == "cursor" and token.scopes == ["read"]
    assert await ApiKeyVerifier(keys).verify_token("forge_wrong") is None
