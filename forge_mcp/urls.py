"""URLs the server calls on a caller's behalf (an LLM judge): the SSRF check.

Allowed: http and https to loopback, private and public addresses — a judge served on
this machine or the LAN is the main use of a self-hosted server. Refused: other schemes,
credentials inside the URL, and link-local and cloud-metadata addresses (169.254.0.0/16,
fe80::/10, fd00:ec2::254, …), the usual target of a server-side request forgery, checked
on every address the host name resolves to. Redirects are not followed by the callers.
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
    """Why the server must not call this address, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in METADATA_NETWORKS):
        return f"a link-local or cloud-metadata address ({address})"
    if address.is_unspecified or address.is_multicast or (address.is_reserved and not address.is_loopback):
        return f"not an address to call ({address})"
    return None


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
