"""Names and versioned references shared by datasets and models: `<name>` means the newest
version, `<name>@v<N>` one version."""

from __future__ import annotations

import re

from forge_mcp.errors import InvalidArguments

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
REFERENCE = re.compile(r"^(?P<name>[a-z0-9][a-z0-9_.-]{0,63})(@v(?P<version>\d{1,6}))?$")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise InvalidArguments(
            "name: use 1-64 lowercase letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return name


def parse_reference(reference: object, field: str, listing: str) -> tuple[str, int | None]:
    """(name, version or None for the newest), or an error naming the field and the listing tool."""
    match = REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None:
        raise InvalidArguments(f"{field}: give a {field} name or '<name>@v<version>', as {listing} shows them")
    return match["name"], int(match["version"]) if match["version"] is not None else None
