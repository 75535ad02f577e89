"""Prompts: save a template as the next version of a name (with a message saying what changed),
list them, diff two versions, render one with variables. The prompt tools call this, the MCP
prompts (prompts/list, prompts/get) call it for the latest versions, and the chat operator
renders its system prompt (operator-system) through it. Prompts are shared by everyone on the
server: reading needs the read scope, saving train, and a packaged default such as
operator-system, which changes the server's own behaviour, admin."""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.prompts.defaults import SEEDED_BY, PromptDefault
from forge_mcp.prompts.limits import (
    MAX_DIFF_CHARS,
    MAX_LIST,
    MAX_MESSAGE_CHARS,
    MAX_TEMPLATE_CHARS,
    MAX_VARIABLES_CHARS,
    NAME,
)
from forge_mcp.prompts.models import PromptDiff, PromptList, PromptRendered, PromptSaved, StoredPrompt
from forge_mcp.prompts.repository import NewVersion, PromptRepository
from forge_mcp.prompts.templates import TemplateEngine
from forge_mcp.security.principal import Principal

_NAME = re.compile(NAME)
_REF = re.compile(r"^(?P<name>[^@]+)@v(?P<version>[1-9][0-9]{0,8})$")
Listener = Callable[[str], None]  # told a prompt's name once it has a new version


class PromptService:
    def __init__(self, repository: PromptRepository, engine: TemplateEngine,
                 defaults: Sequence[PromptDefault] = ()) -> None:  # fmt: skip
        self._repo = repository
        self._engine = engine
        self._defaults = {default.name: default for default in defaults}
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        """`listener(name)` runs after each new version (MCP clients hear that the prompt list changed)."""
        self._listeners.append(listener)

    async def seed_defaults(self) -> None:
        """Writes each packaged default the workspace lacks (or whose packaged text changed while
        nobody saved a version of their own); does nothing the second time."""
        for default in self._defaults.values():
            if await self._repo.seed(NewVersion(default.name, default.template, default.message, list(default.variables),
                                                [], time.time(), SEEDED_BY)):  # fmt: skip
                self._announce(default.name)

    async def save(self, principal: Principal, name: str, template: str, message: str) -> PromptSaved:
        """Stores `template` as the next version of `name`; the same template as the latest
        version returns that version, with created False. A template that does not parse is refused."""
        _check_name(name)
        default = self._defaults.get(name)
        if default is not None:
            principal.require(default.save_scope, f"a new version of {name} ({default.role}, for every caller)")
        template = _checked_text("template", template, MAX_TEMPLATE_CHARS, "the Jinja2 template")
        message = _checked_text("message", message, MAX_MESSAGE_CHARS, "what this version changes, in one line").strip()
        found = await asyncio.to_thread(self._engine.variables, template)
        if default is not None and not default.takes_variables and found.names:
            raise InvalidArguments(f"template: {name} is {default.role} and is rendered with no variables, but this "
                                   f"template uses {_names(found.names)}; write the text itself")  # fmt: skip
        if not found.names:  # it renders the same every time: any error it has shows now
            await asyncio.to_thread(self._engine.render, template, {}, what="template")
        new = NewVersion(name, template, message, found.names, found.optional, time.time(), principal.name)
        stored, created = await self._repo.save(new)
        if created:
            self._announce(name)
        return PromptSaved(name=name, version=stored.version, ref=stored.ref, variables=stored.variables,
                           optional=stored.optional, message=stored.message, created=created)  # fmt: skip

    async def list(self, name: str | None = None, *, limit: int = 100) -> PromptList:
        """Every prompt by its latest version, by name; with `name`, that prompt and its versions."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidArguments(f"limit: {limit} is not between 1 and {MAX_LIST}")
        if name is None:
            return PromptList(prompts=await self._repo.summaries(limit), total=await self._repo.count(), versions=[])
        _check_name(name)
        summaries = await self._repo.summaries(1, name)
        if not summaries:
            raise _no_such_prompt(name)
        return PromptList(prompts=summaries, total=1, versions=(await self._repo.versions(name))[:limit])

    async def exists(self, name: str) -> bool:
        """Whether a prompt of that name has been saved (a name that is no slug has not)."""
        return bool(_NAME.match(name)) and await self._repo.get(name) is not None

    async def diff(self, name: str, from_version: int | None = None, to_version: int | None = None) -> PromptDiff:
        """A unified diff from one version's template to another's: by default the latest against
        the one before it."""
        name, to_version = _split_ref(name, to_version, "to_version")
        new = await self._version(name, to_version, "to_version")
        if from_version is None and new.version == 1:
            raise InvalidArguments(f"from_version: {new.ref} is the first version, there is none before it; save "
                                   "another version, or give from_version and to_version")  # fmt: skip
        old = await self._version(name, from_version or new.version - 1, "from_version")
        return await asyncio.to_thread(_diff, old, new)

    async def render(
        self, name: str, variables: dict[str, Any] | None = None, version: int | None = None
    ) -> PromptRendered:
        """The text of a version (the latest by default) with `variables`, each of the variables it
        expects and no other. `name` may be a ref, name@vN."""
        name, version = _split_ref(name, version, "version")
        stored = await self._version(name, version, "version")
        given = dict(variables or {})
        _check_variables(stored, given)
        text = await asyncio.to_thread(self._engine.render, stored.template, given, what=stored.ref)
        return PromptRendered(name=name, version=stored.version, ref=stored.ref, message=stored.message, text=text,
                              chars=len(text))  # fmt: skip

    async def _version(self, name: str, version: int | None, field: str) -> StoredPrompt:
        """A version (the latest with None); an unknown one names the versions there are."""
        _check_name(name)
        stored = await self._repo.get(name, version)
        if stored is not None:
            return stored
        latest = await self._repo.get(name) if version is not None else None
        if latest is None:
            raise _no_such_prompt(name)
        raise NotFound(f"{field}: {name} has no v{version}; its versions are v1 to v{latest.version}")

    def _announce(self, name: str) -> None:
        for listener in self._listeners:
            listener(name)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InvalidArguments(f"name: {name[:80]!r} is not a prompt name; use a lowercase slug such as support-reply "
                               "(letters, digits, '-' and '_', at most 64)")  # fmt: skip


def _split_ref(name: str, version: int | None, field: str) -> tuple[str, int | None]:
    """`name@vN` is name and version N; with `field` also given, they must agree."""
    match = _REF.match(name)
    if match is None:
        return name, version
    named = int(match["version"])
    if version is not None and version != named:
        raise InvalidArguments(f"{field}: {version} disagrees with {name!r}; give the version once")
    return match["name"], named


def _checked_text(field: str, value: str, limit: int, what: str) -> str:
    if not value.strip():
        raise InvalidArguments(f"{field}: it is empty; give {what}")
    if len(value) > limit:
        raise InvalidArguments(f"{field}: {len(value):,} characters is over the limit of {limit:,}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArguments(f"{field}: it holds a lone surrogate (an unpaired \\ud800-\\udfff escape); send valid "
                               "Unicode text") from None  # fmt: skip
    return value


def _check_variables(stored: StoredPrompt, given: dict[str, Any]) -> None:
    expected = stored.variables
    missing = [name for name in expected if name not in given and name not in stored.optional]
    extra = sorted(name for name in given if name not in expected)
    if missing or extra:
        problems = ([f"missing {_names(missing)}"] if missing else []) + (
            [f"not used by it: {_names(extra)}"] if extra else []
        )
        wanted = f"expects {_names(expected)}" if expected else "expects no variables"
        optional = f" (optional: {_names(stored.optional)})" if stored.optional else ""
        raise InvalidArguments(f"variables: {'; '.join(problems)}; {stored.ref} {wanted}{optional}")
    size = len(json.dumps(given, ensure_ascii=False, default=str))
    if size > MAX_VARIABLES_CHARS:
        raise InvalidArguments(f"variables: {size:,} characters of JSON is over the limit of {MAX_VARIABLES_CHARS:,}")


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(name[:64]) for name in names[:20]) + (
        f" and {len(names) - 20} more" if len(names) > 20 else ""
    )


def _diff(old: StoredPrompt, new: StoredPrompt) -> PromptDiff:
    lines = list(difflib.unified_diff(old.template.splitlines(), new.template.splitlines(), fromfile=old.ref,
                                      tofile=new.ref, lineterm=""))  # fmt: skip
    text = "\n".join(lines)
    body = lines[2:]  # after the ---/+++ header
    return PromptDiff(
        name=new.name, from_ref=old.ref, to_ref=new.ref, diff=text[:MAX_DIFF_CHARS], changed=old.template != new.template,
        added_lines=sum(1 for line in body if line.startswith("+")),
        removed_lines=sum(1 for line in body if line.startswith("-")),
        variables_added=[v for v in new.variables if v not in old.variables],
        variables_removed=[v for v in old.variables if v not in new.variables], truncated=len(text) > MAX_DIFF_CHARS,
    )  # fmt: skip


def _no_such_prompt(name: str) -> NotFound:
    return NotFound(f"name: no prompt {name[:80]!r}; prompt_list shows the prompts, prompt_save creates one")
