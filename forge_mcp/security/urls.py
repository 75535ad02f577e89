"""URLs the server calls on a caller's behalf (an LLM judge): the SSRF check.

Allowed: http and https to loopback, private and public addresses — a judge served on
this machine or the LAN is the main use of a self-hosted server. Refused: other schemes,
credentials inside the URL, and link-local and cloud-metadata addresses (169.254.0.0/16,
fe80::/10, fd00:ec2::254, …), the usual target of a server-side request forgery, checked
on every address the host name resolves to, and on every IPv4 address an IPv6 one carries
(6to4, Teredo, NAT64, mapped, compatible). Redirects are not followed by the callers.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse

from forge_mcp.errors import InvalidArguments

SCHEMES = ("http", "https")
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.azure.internal"})  # fmt: skip
METADATA_NETWORKS = tuple(ipaddress.ip_network(n) for n in (
    "169.254.0.0/16",  # link-local: AWS, GCP, Azure, OpenStack metadata at 169.254.169.254
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "192.0.0.192/32",  # Oracle Cloud metadata
))  # fmt: skip

NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052
NAT64_LOCAL_USE = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_outbound_url(url: str, field: str) -> str:
    """The URL (without a trailing slash) when the server may call it; InvalidArguments naming
    `field` otherwise. Resolves the host name: call it off the event loop."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise InvalidArguments(f"{field}: not a valid URL") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidArguments(f"{field}: only http:// and https:// URLs are allowed, e.g. http://127.0.0.1:8000/v1")
    if parts.username is not None or parts.password is not None:
        raise InvalidArguments(f"{field}: no credentials inside the URL; name an environment variable that holds the key")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise InvalidArguments(f"{field}: the URL has no host")
    if host in METADATA_NAMES:
        raise InvalidArguments(f"{field}: {host} is a cloud metadata service; the server does not call it")
    for address in _addresses(host, port or (443 if parts.scheme.lower() == "https" else 80), field):
        problem = refused_address(address)
        if problem:
            raise InvalidArguments(f"{field}: {host} is {problem}; the server does not call it")
    return url.strip().rstrip("/")


def refused_address(address: IPAddress) -> str | None:
    """Why the server must not call this address, or None. An IPv6 address that carries an
    IPv4 address (mapped, 6to4, Teredo, NAT64, IPv4-compatible) reaches that IPv4 host
    through a relay or a translator, so each address it carries is checked too."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the very same host: judge it as IPv4 (::ffff:8.8.8.8 is fine)
    for candidate in (*embedded_ipv4(address), address):
        if any(candidate in network for network in METADATA_NETWORKS):
            return f"a link-local or cloud-metadata address ({candidate})"
        # 0.0.0.0 only as the host itself: inside an IPv6 address it is what an unused field
        # decodes to, and it reaches no further than this machine, which loopback allows anyway.
        unspecified = candidate.is_unspecified and candidate is address
        if unspecified or candidate.is_multicast or (candidate.is_reserved and not candidate.is_loopback):
            return f"not an address to call ({candidate})"
    return None


def embedded_ipv4(address: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: ::ffff:a.b.c.d (mapped), 2002:AABB:CCDD::/48
    (6to4), 2001:0::/32 (Teredo: its server and its client), NAT64 under 64:ff9b::/96 and
    64:ff9b:1::/48 (RFC 6052; a local-use prefix may be /48 to /96, so each layout is
    decoded), and ::a.b.c.d (IPv4-compatible, deprecated but still routed by some stacks)."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [a for a in (address.ipv4_mapped, address.sixtofour, *(address.teredo or ())) if a is not None]
    value = int(address)
    if address in NAT64_WELL_KNOWN:
        found.append(ipaddress.IPv4Address(value & 0xFFFF_FFFF))
    elif address in NAT64_LOCAL_USE:
        bits = format(value, "0128b")
        payload = bits[:64] + bits[72:]  # RFC 6052: bits 64-71 (the "u" octet) carry no address
        for prefix in (48, 56, 64, 96):
            start = prefix if prefix <= 64 else prefix - 8
            found.append(ipaddress.IPv4Address(int(payload[start : start + 32], 2)))
    if value >> 32 == 0 and value > 1:  # ::a.b.c.d; :: and ::1 are not IPv4 addresses
        found.append(ipaddress.IPv4Address(value))
    return found


def _addresses(host: str, port: int, field: str) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise InvalidArguments(f"{field}: cannot resolve the host {host!r}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
