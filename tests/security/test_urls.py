"""The SSRF check on URLs the server calls for a caller (an LLM judge): loopback, LAN and
public hosts over http(s) pass; other schemes, credentials in the URL, and link-local or
cloud-metadata addresses — however they are spelled — are refused, naming the field."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.security.urls import check_outbound_url


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
    ("http://localhost:8000/v1/", "http://localhost:8000/v1"),
    ("https://[::1]:8443/v1", "https://[::1]:8443/v1"),
    ("http://10.0.0.5:8000/v1", "http://10.0.0.5:8000/v1"),  # a judge on the LAN
    ("HTTPS://8.8.8.8/v1", "HTTPS://8.8.8.8/v1"),
])  # fmt: skip
def test_loopback_lan_and_public_http_urls_pass(url: str, expected: str) -> None:
    assert check_outbound_url(url, "judge_url") == expected


@pytest.mark.parametrize(("url", "problem"), [
    ("file:///etc/passwd", "only http:// and https:// URLs are allowed"),
    ("ftp://127.0.0.1/v1", "only http:// and https:// URLs are allowed"),
    ("gopher://127.0.0.1:11211/", "only http:// and https:// URLs are allowed"),
    ("127.0.0.1:8000/v1", "only http:// and https:// URLs are allowed"),
    ("http:///v1", "the URL has no host"),
    ("http://127.0.0.1:99999/v1", "not a valid URL"),
    ("http://user:secret@127.0.0.1:8000/v1", "no credentials inside the URL"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local or cloud-metadata address"),
    ("http://169.254.1.1:8000/v1", "is a link-local or cloud-metadata address"),
    ("http://[fd00:ec2::254]/latest", "is a link-local or cloud-metadata address (fd00:ec2::254)"),
    ("http://[fe80::1]/", "is a link-local or cloud-metadata address"),
    ("http://[::ffff:169.254.169.254]/", "is a link-local or cloud-metadata address (169.254.169.254)"),
    ("http://2852039166/", "is a link-local or cloud-metadata address (169.254.169.254)"),  # 169.254.169.254 as a number
    ("http://metadata.google.internal/computeMetadata/v1/", "metadata.google.internal is a cloud metadata service"),
    ("http://0.0.0.0:8000/v1", "not an address to call"),
    ("http://224.0.0.1/", "not an address to call"),
])  # fmt: skip
def test_other_schemes_credentials_and_metadata_addresses_are_refused(url: str, problem: str) -> None:
    with pytest.raises(InvalidArguments, match="^judge_url: ") as refused:
        check_outbound_url(url, "judge_url")
    assert problem in refused.value.message


@pytest.mark.parametrize("host", [
    "[::ffff:a9fe:a9fe]",  # IPv4-mapped, in hex
    "[2002:a9fe:a9fe::1]",  # 6to4
    "[2001:0:a9fe:a9fe::1]",  # Teredo, the metadata address as its server
    "[2001:0:4136:e378:8000:63bf:5601:5601]",  # Teredo, as its (bit-inverted) client
    "[64:ff9b::a9fe:a9fe]",  # NAT64, the well-known prefix
    "[64:ff9b::169.254.169.254]",  # the same, in dotted form
    "[64:ff9b:1::a9fe:a9fe]",  # NAT64, a local-use /96 prefix
    "[64:ff9b:1:a9fe:a9:fe00::]",  # NAT64, a local-use /48 prefix (RFC 6052 layout, "u" octet skipped)
    "[::a9fe:a9fe]",  # IPv4-compatible
    "[::169.254.169.254]",
])  # fmt: skip
def test_ipv6_forms_that_carry_the_metadata_address_are_refused(host: str) -> None:
    with pytest.raises(InvalidArguments, match="^judge_url: ") as refused:
        check_outbound_url(f"http://{host}/latest/meta-data/", "judge_url")
    assert "is a link-local or cloud-metadata address (169.254.169.254)" in refused.value.message


@pytest.mark.parametrize("host", ["[2002:808:808::1]", "[2001:0:4136:e378:8000:63bf:f7f7:f7f7]", "[2606:4700::1111]"])
def test_ipv6_forms_that_carry_a_public_address_still_pass(host: str) -> None:
    assert check_outbound_url(f"http://{host}:8000/v1", "judge_url") == f"http://{host}:8000/v1"
