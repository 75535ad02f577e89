"""Host and Origin patterns match exactly: host name whole (any case), port exactly or
`*` for any port number; nothing is a prefix of anything."""

from __future__ import annotations

import pytest

from forge_mcp.errors import ConfigError
from forge_mcp.protocols.host_origin import HostOriginPolicy
from forge_mcp.protocols.http_routes import host_origin_policy
from forge_mcp.settings import load_settings

POLICY = HostOriginPolicy(
    ["127.0.0.1:*", "localhost:*", "[::1]:*", "localhost", "forge.lan:8443"],
    ["http://localhost:*", "http://[::1]:*", "https://forge.lan:8443"],
)


@pytest.mark.parametrize(
    "host",
    ["localhost:8765", "LOCALHOST:8765", "localhost", "127.0.0.1:1", "[::1]:8765", "[::1]:65535",
     "forge.lan:8443", "FORGE.LAN:8443", "localhost:08765"],
)  # fmt: skip
def test_listed_hosts_pass(host: str) -> None:
    assert POLICY.host_allowed(host)


@pytest.mark.parametrize(
    "host",
    [
        None, "", "localhost:8765.evil.example", "localhost.evil.example:8765", "localhost.:8765", "localhost:",
        "localhost:*", "localhost:65536", "localhost:80:80", "127.0.0.1:8765@evil.example", "evil@localhost:8765",
        "127.0.0.1.evil.example:80", "[::1].evil.example:80", "[::1]:8765.evil", "[::2]:8765", "forge.lan",
        "forge.lan:8444", "forge.lan:84430", "xlocalhost:8765", "localhost :8765", "localhost:8765 ", "local host:1",
    ],
)  # fmt: skip
def test_anything_else_is_refused(host: str | None) -> None:
    assert not POLICY.host_allowed(host)


@pytest.mark.parametrize("origin", [None, "http://localhost:8765", "HTTP://LocalHost:1", "http://[::1]:8765",
                                    "https://forge.lan:8443"])  # fmt: skip
def test_listed_origins_and_no_origin_pass(origin: str | None) -> None:
    assert POLICY.origin_allowed(origin)


@pytest.mark.parametrize(
    "origin",
    [
        "", "null", "http://localhost:8765.evil.example", "http://localhost.evil.example:8765", "http://localhost",
        "https://localhost:8765", "http://localhost:8765/", "http://localhost:8765/path", "http://user@localhost:8765",
        "https://forge.lan", "https://forge.lan:443", "http://forge.lan:8443", "localhost:8765", "http://[::1]x:1",
    ],
)  # fmt: skip
def test_other_origins_are_refused(origin: str) -> None:
    assert not POLICY.origin_allowed(origin)


def test_operator_entries_keep_their_meaning() -> None:
    policy = host_origin_policy(load_settings(allowed_hosts="forge.lan:*", allowed_origins="https://forge.lan:*"))
    assert policy.host_allowed("forge.lan:8765") and policy.host_allowed("localhost:8765")
    assert not policy.host_allowed("forge.lan.evil.example:8765") and not policy.host_allowed("forge.lan:8765.evil")
    assert policy.origin_allowed("https://forge.lan:9000") and not policy.origin_allowed("https://forge.lan:9000.evil")


def test_the_bind_name_is_allowed_exactly(tmp_path) -> None:  # noqa: ANN001
    policy = host_origin_policy(load_settings(home=tmp_path, host="forge.example", auth="on"))
    assert policy.host_allowed("forge.example:8765") and policy.host_allowed("forge.example")
    assert not policy.host_allowed("forge.example.evil:8765")


@pytest.mark.parametrize("entry", ["forge.lan:abc", "http://forge.lan", "forge.lan/x", "*.lan"])
def test_a_malformed_host_entry_is_a_config_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="allowed_hosts"):
        HostOriginPolicy([entry], [])


def test_a_malformed_origin_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed_origins"):
        HostOriginPolicy([], ["forge.lan:*"])
