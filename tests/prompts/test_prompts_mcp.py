"""Prompts through the official MCP client, in process and over Streamable HTTP against a real
`forge-mcp serve`, in both protocol eras: a prompt saved with prompt_save is at once an MCP
prompt (prompts/list with its variables as required arguments, prompts/get rendering its latest
version), a new version replaces it without a restart, and an unknown prompt or a missing or
unused argument is -32602 with the reason. operator-system is always there."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import PromptsListChanged

from forge_mcp.agents.operator import SYSTEM_PROMPT
from forge_mcp.app import ForgeApp
from forge_mcp.prompts.defaults import OPERATOR_SYSTEM
from forge_mcp.server_process import ServerProcess

TEMPLATE = "Reply to {{ customer }} about {{ topic }}.{% if urgent %} Urgently.{% endif %} {{ sign|default('Bye') }}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def refused(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    return result.content[0].text.removeprefix(f"Error executing tool {tool}: ")


async def get_refused(client: Client, name: str, arguments: dict[str, str] | None = None) -> str:
    with pytest.raises(MCPError) as caught:
        await client.get_prompt(name, arguments)
    assert caught.value.error.code == -32602
    return caught.value.error.message


async def save_list_and_get(client: Client, name: str) -> None:
    """The whole story, as any MCP client sees it."""
    saved = await call(client, "prompt_save", {"name": name, "template": TEMPLATE, "message": "First reply"})
    assert saved["ref"] == f"{name}@v1" and saved["variables"] == ["customer", "topic", "urgent", "sign"]
    listed = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
    assert OPERATOR_SYSTEM in listed and listed[OPERATOR_SYSTEM].arguments == []
    mine = listed[name]
    assert mine.description == "First reply"
    assert [(a.name, a.required) for a in mine.arguments] == [
        ("customer", True),
        ("topic", True),
        ("urgent", True),
        ("sign", False),  # it has a default
    ]

    got = await client.get_prompt(name, {"customer": "Ann", "topic": "billing", "urgent": ""})
    assert got.description == "First reply" and len(got.messages) == 1
    assert (got.messages[0].role, got.messages[0].content.text) == ("user", "Reply to Ann about billing. Bye")

    await call(
        client, "prompt_save", {"name": name, "template": "Dear {{ customer }}: {{ topic }}", "message": "Shorter"}
    )
    newer = await client.get_prompt(name, {"customer": "Ann", "topic": "billing"})  # no restart, no cache
    assert newer.messages[0].content.text == "Dear Ann: billing" and newer.description == "Shorter"
    pinned = await client.get_prompt(f"{name}@v1", {"customer": "Ann", "topic": "billing", "urgent": "y"})
    assert pinned.messages[0].content.text == "Reply to Ann about billing. Urgently. Bye"  # name@vN: that version
    relisted = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
    assert [a.name for a in relisted[name].arguments] == ["customer", "topic"]

    missing = await get_refused(client, name, {"customer": "Ann"})
    assert missing == f"variables: missing 'topic'; {name}@v2 expects 'customer', 'topic'"
    unused = await get_refused(client, name, {"customer": "Ann", "topic": "x", "urgent": "yes"})
    assert unused == f"variables: not used by it: 'urgent'; {name}@v2 expects 'customer', 'topic'"
    unknown = await get_refused(client, "no-such-prompt")
    assert unknown.startswith("unknown prompt 'no-such-prompt'; the prompts are: ") and name in unknown

    system = await client.get_prompt(OPERATOR_SYSTEM)
    assert system.messages[0].content.text == SYSTEM_PROMPT
    tool_side = await refused(client, "prompt_render", {"name": name, "variables": {"customer": "Ann"}})
    assert tool_side == missing  # the same words on both surfaces


async def test_prompts_in_process(app: ForgeApp) -> None:
    async with Client(app.mcp_server(over_http=False)) as client:
        await save_list_and_get(client, "support-reply")
        diff = await call(client, "prompt_diff", {"name": "support-reply"})
        listed = await call(client, "prompt_list", {"name": "support-reply"})
        rendered = await call(client, "prompt_render", {"name": "support-reply@v1",
                                                        "variables": {"customer": "Bo", "topic": "x", "urgent": True}})  # fmt: skip
        bad_name = await refused(client, "prompt_save", {"name": "Bad Name", "template": "x", "message": "m"})
        bad_template = await refused(
            client, "prompt_save", {"name": "broken", "template": "{% if x %}", "message": "m"}
        )
    assert diff["from_ref"] == "support-reply@v1" and diff["to_ref"] == "support-reply@v2"
    assert diff["variables_removed"] == ["urgent", "sign"] and "+Dear {{ customer }}: {{ topic }}" in diff["diff"]
    assert [v["ref"] for v in listed["versions"]] == ["support-reply@v2", "support-reply@v1"]
    assert rendered["text"] == "Reply to Bo about x. Urgently. Bye"
    assert (
        bad_name
        == "invalid arguments for prompt_save: 'name': String should match pattern '^[a-z0-9][a-z0-9_-]{0,63}$'"
    )
    assert bad_template.startswith("template: line 1: Unexpected end of template")


async def test_a_new_version_is_announced_on_listen_streams(app: ForgeApp) -> None:
    async with Client(app.mcp_server(over_http=False)) as client:
        async with client.listen(prompts_list_changed=True) as subscription:
            await call(client, "prompt_save", {"name": "announced", "template": "A", "message": "1"})
            with anyio.fail_after(10):
                event = await subscription.__anext__()
    assert event == PromptsListChanged()


@pytest.mark.e2e
@pytest.mark.filterwarnings("ignore::mcp.shared.exceptions.MCPDeprecationWarning")
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_prompts_over_streamable_http_in_both_eras(server: ServerProcess, mode: str) -> None:
    async with Client(f"{server.url}/mcp/", mode=mode) as client:
        await save_list_and_get(client, f"reply-{mode}")
    assert "Traceback" not in server.log_tail(200_000)


async def test_a_caller_without_the_read_scope_gets_no_prompt(app: ForgeApp) -> None:
    """Over HTTP with auth on the gate answers 403 first; the adapter holds the line as well."""
    from forge_mcp.protocols.mcp_prompts import McpPrompts
    from forge_mcp.security.principal import Principal

    adapter = McpPrompts(app.services.prompts, lambda: Principal("nobody", frozenset()))
    for attempt in (adapter.list(), adapter.get(OPERATOR_SYSTEM, {})):
        with pytest.raises(MCPError) as caught:
            await attempt
        assert caught.value.error.code == -32602
        assert caught.value.error.message.startswith("reading prompts needs the 'read' scope")
