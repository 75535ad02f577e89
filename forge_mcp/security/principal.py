"""Who is calling, and what they may do."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from forge_mcp.errors import Forbidden

Scope = Literal["read", "train", "admin"]
# Ordered: each scope includes the ones before it. A trainer has to read (open an MCP
# session, follow its jobs), and an admin may do everything, so admin ⊃ train ⊃ read.
SCOPES: tuple[Scope, ...] = ("read", "train", "admin")


def grants(scopes: Iterable[str], needed: str) -> bool:
    """Whether keys with `scopes` may do what needs `needed`: it, or a scope above it."""
    rank = SCOPES.index(needed) if needed in SCOPES else len(SCOPES)
    return any(s in SCOPES and SCOPES.index(s) >= rank for s in scopes)


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
        return grants(self.scopes, scope)

    @property
    def sees_everything(self) -> bool:
        """Admin keys and the local operator see and act on every job and task; anyone else
        only on their own."""
        return self.allows("admin")

    def require(self, scope: str, action: str) -> None:
        if not self.allows(scope):
            raise Forbidden(
                f"{action} needs the '{scope}' scope and this API key does not have it; "
                f"create a key with it: forge-mcp keys create --name NAME --scopes {scope}"
            )
