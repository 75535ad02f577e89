"""Prompt versions in the workspace database: one row per (name, version), numbered from 1 in
a transaction, so that two savers never take the same number. Lists read no templates."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.prompts.models import (
    PromptSummary,
    PromptVersion,
    StoredPrompt,
    ref,
    storable_variables,
    stored_variables,
)
from forge_mcp.store import Store, Transaction

_LATEST = "SELECT * FROM prompts WHERE name = ? ORDER BY version DESC LIMIT 1"
_SUMMARIES = (
    "SELECT p.name, p.version, p.message, p.variables, p.created_at, p.principal, n.versions FROM prompts p "
    "JOIN (SELECT name, MAX(version) AS latest, COUNT(*) AS versions FROM prompts GROUP BY name) n "
    "ON p.name = n.name AND p.version = n.latest"
)


@dataclass(frozen=True)
class NewVersion:
    name: str
    template: str
    message: str
    variables: list[str]
    optional: list[str]
    created_at: float
    principal: str


class PromptRepository:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def save(self, new: NewVersion) -> tuple[StoredPrompt, bool]:
        """(the new version, True); or (the latest version, False) when its template is the same."""
        async with self._store.transaction() as tx:
            latest = await _latest(tx, new.name)
            if latest is not None and latest.template == new.template:
                return latest, False
            return await _insert(tx, new, latest.version + 1 if latest else 1), True

    async def seed(self, new: NewVersion) -> bool:
        """Writes a packaged default: version 1 of a name nobody has saved, or the next version when
        the default changed and the latest version is still the packaged one (not someone's own).
        Every start calls it: when there is nothing to write it only reads."""
        if not _seeds(await self.get(new.name), new):
            return False
        async with self._store.transaction() as tx:
            latest = await _latest(tx, new.name)
            if not _seeds(latest, new):  # another process seeded it meanwhile
                return False
            await _insert(tx, new, latest.version + 1 if latest else 1)
            return True

    async def get(self, name: str, version: int | None = None) -> StoredPrompt | None:
        """A version, or the latest one."""
        if version is None:
            row = await self._store.fetchone(_LATEST, (name,))
        else:
            row = await self._store.fetchone("SELECT * FROM prompts WHERE name = ? AND version = ?", (name, version))
        return StoredPrompt.from_row(row) if row else None

    async def versions(self, name: str) -> list[PromptVersion]:
        """Newest first."""
        rows = await self._store.fetchall(
            "SELECT version, message, variables, LENGTH(template) AS chars, created_at, principal FROM prompts "
            "WHERE name = ? ORDER BY version DESC",
            (name,),
        )
        return [PromptVersion(version=row["version"], ref=ref(name, row["version"]), message=row["message"],
                              **_variables(row["variables"]), chars=row["chars"], created_at=row["created_at"],
                              saved_by=row["principal"]) for row in rows]  # fmt: skip

    async def summaries(self, limit: int, name: str | None = None) -> list[PromptSummary]:
        """Each prompt by its latest version, by name (or the one named)."""
        where, params = (" WHERE p.name = ?", (name,)) if name is not None else ("", ())
        rows = await self._store.fetchall(f"{_SUMMARIES}{where} ORDER BY p.name LIMIT ?", (*params, limit))
        return [PromptSummary(name=row["name"], latest=row["version"], ref=ref(row["name"], row["version"]),
                              message=row["message"], **_variables(row["variables"]), versions=row["versions"],
                              updated_at=row["created_at"], saved_by=row["principal"]) for row in rows]  # fmt: skip

    async def count(self) -> int:
        row = await self._store.fetchone("SELECT COUNT(DISTINCT name) AS n FROM prompts")
        return int(row["n"]) if row else 0


def _variables(text: str) -> dict[str, list[str]]:
    variables, optional = stored_variables(text)
    return {"variables": variables, "optional": optional}


def _seeds(latest: StoredPrompt | None, default: NewVersion) -> bool:
    return latest is None or (latest.principal == default.principal and latest.template != default.template)


async def _latest(tx: Transaction, name: str) -> StoredPrompt | None:
    row = await tx.fetchone(_LATEST, (name,))
    return StoredPrompt.from_row(row) if row else None


async def _insert(tx: Transaction, new: NewVersion, version: int) -> StoredPrompt:
    await tx.execute(
        "INSERT INTO prompts (name, version, template, message, variables, created_at, principal) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (new.name, version, new.template, new.message, storable_variables(new.variables, new.optional), new.created_at,
         new.principal),
    )  # fmt: skip
    return StoredPrompt(name=new.name, version=version, template=new.template, message=new.message,
                        variables=new.variables, optional=new.optional, created_at=new.created_at,
                        principal=new.principal)  # fmt: skip
