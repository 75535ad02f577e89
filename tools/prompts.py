"""Prompts: versioned Jinja2 templates, saved with a message, listed, diffed and rendered in a
sandbox. The latest version of each is also an MCP prompt (prompts/list, prompts/get)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.prompts.limits import MAX_LIST, MAX_MESSAGE_CHARS, MAX_TEMPLATE_CHARS, NAME
from forge_mcp.prompts.models import PromptDiff, PromptList, PromptRendered, PromptSaved
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("prompts", "Versioned prompt templates: save, list, diff, render; also served as MCP prompts.")

Name = Annotated[str, Field(pattern=NAME, description="Lowercase slug, e.g. support-reply")]
NameOrRef = Annotated[
    str, Field(pattern=NAME.removesuffix("$") + r"(@v[1-9][0-9]{0,8})?$", description="name or name@vN")
]
Version = Annotated[int | None, Field(ge=1, description="Default: the latest")]


@toolset.capability(scope="train", title="Save a prompt version")
async def prompt_save(
    services: Services,
    principal: Principal,
    name: Name,
    template: Annotated[
        str, Field(max_length=MAX_TEMPLATE_CHARS, description="Jinja2: {{ var }}, {% if %}, {% for %}")
    ],
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS, description="What this version changes")],
) -> PromptSaved:
    """Saves a prompt template as the next version of name (v1 when new), with a message; returns
    name@vN and the variables it uses (optional: those with |default or `is defined`). The latest
    version's template again returns that version. A template that does not parse is refused naming
    its line. The latest version is also an MCP prompt. operator-system is the chat operator's
    system prompt (admin). Instant."""
    return await services.prompts.save(principal, name, template, message)


@toolset.capability(scope="read", title="List prompts", read_only=True)
async def prompt_list(
    services: Services,
    name: Annotated[str | None, Field(pattern=NAME, description="One prompt: its versions too")] = None,
    limit: Annotated[int, Field(ge=1, le=MAX_LIST)] = 100,
) -> PromptList:
    """Every prompt by its latest version (message, variables, how many versions); with name, that
    prompt's versions, newest first, each with its message and variables. Instant, read-only."""
    return await services.prompts.list(name, limit=limit)


@toolset.capability(scope="read", title="Diff two prompt versions", read_only=True)
async def prompt_diff(
    services: Services, name: NameOrRef, from_version: Version = None, to_version: Version = None
) -> PromptDiff:
    """A unified diff between two versions of a prompt (default: the latest against the one before),
    with the variables added and removed. Use it to review a change before relying on it. Instant,
    read-only."""
    return await services.prompts.diff(name, from_version, to_version)


@toolset.capability(scope="read", title="Render a prompt", read_only=True)
async def prompt_render(
    services: Services,
    name: NameOrRef,
    variables: Annotated[dict[str, Any] | None, Field(description="Each variable it uses, no other")] = None,
    version: Version = None,
) -> PromptRendered:
    """The text of a prompt version (default: the latest) with its variables filled in, to test a
    template or to use it. A missing or unused variable is an error naming it. Rendered in a sandbox,
    bounded in size and time. Instant, read-only."""
    return await services.prompts.render(name, variables, version)
