"""The prompts every workspace has from its start: packaged defaults, version 1 of each written
by the server (seeded idempotently when it starts). Their text lives with the code that uses it
(the chat operator's SYSTEM_PROMPT), so there is one copy of it."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.security.principal import Scope

OPERATOR_SYSTEM = "operator-system"
SEEDED_BY = "forge-mcp"  # the principal of a packaged version


@dataclass(frozen=True)
class PromptDefault:
    name: str
    template: str
    message: str
    role: str  # what the server uses it for, as error messages name it
    save_scope: Scope = "admin"  # a new version changes the server's own behaviour, for every caller
    takes_variables: bool = False  # the server renders it with none
    # The variables its packaged text uses, declared so that seeding at start parses nothing
    # (tests/prompts check them against the parse).
    variables: tuple[str, ...] = ()


def packaged_defaults() -> list[PromptDefault]:
    from forge_mcp.agents.operator import SYSTEM_PROMPT

    return [
        PromptDefault(
            OPERATOR_SYSTEM,
            SYSTEM_PROMPT,
            "The chat operator's system prompt, as forge-mcp ships it",
            role="the chat operator's system prompt",
        ),  # fmt: skip
    ]
