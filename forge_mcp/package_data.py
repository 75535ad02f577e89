"""One lookup for the data that ships inside the package (cards/, configs/, migrations),
so the same code works from an editable checkout and from an installed wheel."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable


def card_file(name: str) -> Traversable:
    return files("forge_mcp.cards").joinpath(name)


def config_file(*parts: str) -> Traversable:
    return files("forge_mcp.configs").joinpath(*parts)


def migration_files() -> list[Traversable]:
    """Numbered SQL migrations (`0001_name.sql`), in order."""
    found = [f for f in files("forge_mcp.migrations").iterdir() if f.name.endswith(".sql")]
    return sorted(found, key=lambda f: f.name)
