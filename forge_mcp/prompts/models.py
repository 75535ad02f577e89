"""A prompt version as stored, and what the prompt tools return."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from pydantic import BaseModel, Field


def ref(name: str, version: int) -> str:
    return f"{name}@v{version}"


@dataclass(frozen=True)
class StoredPrompt:
    """One version of a prompt, its template included."""

    name: str
    version: int
    template: str
    message: str
    variables: list[str]
    optional: list[str]
    created_at: float
    principal: str

    @property
    def ref(self) -> str:
        return ref(self.name, self.version)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredPrompt:
        variables, optional = stored_variables(row["variables"])
        return cls(name=row["name"], version=row["version"], template=row["template"], message=row["message"],
                   variables=variables, optional=optional, created_at=row["created_at"], principal=row["principal"])  # fmt: skip


def stored_variables(text: str) -> tuple[list[str], list[str]]:
    """The variables column: {"names": [...], "optional": [...]} (a plain list of names: none optional)."""
    value = json.loads(text)
    return (value, []) if isinstance(value, list) else (value["names"], value["optional"])


def storable_variables(names: list[str], optional: list[str]) -> str:
    return json.dumps({"names": names, "optional": optional})


class PromptSaved(BaseModel):
    name: str
    version: int
    ref: str = Field(description="name@vN")
    variables: list[str] = Field(description="What prompt_render and prompts/get take, in order of first use")
    optional: list[str] = Field(description="Those it can do without: x|default(…), x is defined")
    message: str
    created: bool = Field(description="False: the template was the latest version's, which is returned")


class PromptVersion(BaseModel):
    version: int
    ref: str
    message: str
    variables: list[str]
    optional: list[str]
    chars: int
    created_at: float
    saved_by: str


class PromptSummary(BaseModel):
    """A prompt by its latest version."""

    name: str
    latest: int
    ref: str
    message: str
    variables: list[str]
    optional: list[str]
    versions: int
    updated_at: float
    saved_by: str


class PromptList(BaseModel):
    prompts: list[PromptSummary]
    total: int
    versions: list[PromptVersion] = Field(description="With name: its versions, newest first")


class PromptDiff(BaseModel):
    name: str
    from_ref: str
    to_ref: str
    diff: str = Field(description="Unified diff of the templates")
    changed: bool
    added_lines: int
    removed_lines: int
    variables_added: list[str]
    variables_removed: list[str]
    truncated: bool


class PromptRendered(BaseModel):
    name: str
    version: int
    ref: str
    message: str
    text: str
    chars: int
