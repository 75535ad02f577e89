"""Who is calling, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from forge_mcp.errors import Forbidden

Scope = Literal["read", "train", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "train", "admin")


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]

    @classmethod
    def local(cls, name: str = "local") -> Principal:
        """The operator: stdio, the CLI, or HTTP on loopback with auth off. The launching
        process is the trust boundary there, so every scope is granted."""
        return cls(name=name, scopes=frozenset(SCOPES))

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes

    def require(self, scope: str, action: str) -> None:
        if not self.allows(scope):
            raise Forbidden(
                f"{action} needs the '{scope}' scope and this API key does not have it; "
                f"create a key with it: forge-mcp keys create --name NAME --scopes {scope}"
            )
