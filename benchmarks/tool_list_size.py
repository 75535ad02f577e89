"""What MCP `tools/list` costs a client before it says a word: the size of the list as sent,
in total and per toolset, in bytes and in tokens of two real tokenizers.

The list is fetched through the real MCP client from the server built in process with every
toolset, and each tool is measured as compact JSON in the form the SDK puts on the wire
(by alias, without nulls). A toolset's size is the sum of its tools; the whole list and the
core set (`--toolsets core,jobs`, what a minimal client lists) are `tools/list` results as
sent. The operator's set is what the chat operator sends its model: the tools of
OPERATOR_TOOLSETS as chat-completion function tools (`tools=[...]`), compact JSON.

Tokens are counted with tiktoken's `o200k_base` (the GPT-4o family) and `cl100k_base`
(GPT-4, GPT-3.5), loaded offline from the encoding files litellm ships (the `agent` extra).

    .venv/bin/python -m benchmarks.tool_list_size            # a Markdown table
    .venv/bin/python -m benchmarks.tool_list_size --json     # the numbers
    .venv/bin/python -m benchmarks.tool_list_size --tools    # also each tool's size
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENCODINGS = ("o200k_base", "cl100k_base")
CORE_SET = ("core", "jobs")  # what a minimal client lists
# tiktoken caches an encoding under the SHA-1 of the address it would download it from.
ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{}.tiktoken"

Counter = Callable[[str], dict[str, int]]  # text -> tokens per encoding


def wire_json(value: Any) -> str:
    """`value` as compact JSON (a pydantic model as the SDK dumps it for the wire)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def wire_size(value: Any) -> int:
    """Bytes of `value` as compact JSON."""
    return len(wire_json(value).encode())


def token_counter(encodings: Iterable[str] = ENCODINGS) -> Counter:
    """Counts tokens with tiktoken, offline: the encoding files come from litellm's package folder
    (TIKTOKEN_CACHE_DIR points there while they load); nothing is downloaded. Raises RuntimeError
    naming the `agent` extra when tiktoken or the files are missing."""
    import importlib.util

    missing = "token counts need tiktoken and litellm's encoding files: pip install 'forge-mcp[agent]'"
    try:
        import tiktoken
    except ImportError as exc:
        raise RuntimeError(missing) from exc
    litellm = importlib.util.find_spec("litellm")  # found, not imported: importing litellm is slow
    if litellm is None or not litellm.submodule_search_locations:
        raise RuntimeError(missing)
    folder = Path(next(iter(litellm.submodule_search_locations))) / "litellm_core_utils" / "tokenizers"
    for name in encodings:
        if not (folder / hashlib.sha1(ENCODING_URL.format(name).encode()).hexdigest()).is_file():
            raise RuntimeError(f"{missing} (no {name} file in {folder}; it is never downloaded)")
    before = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = str(folder)
    try:
        loaded = {name: tiktoken.get_encoding(name) for name in encodings}
    finally:
        if before is None:
            os.environ.pop("TIKTOKEN_CACHE_DIR", None)
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = before
    return lambda text: {name: len(encoding.encode(text, disallowed_special=())) for name, encoding in loaded.items()}


@dataclass
class Size:
    bytes: int
    tokens: dict[str, int] = field(default_factory=dict)  # encoding -> tokens; empty when not counted

    def __add__(self, other: Size) -> Size:
        names = self.tokens.keys() | other.tokens.keys()
        return Size(self.bytes + other.bytes, {n: self.tokens.get(n, 0) + other.tokens.get(n, 0) for n in names})


def size_of(value: Any, count: Counter | None) -> Size:
    text = wire_json(value)
    return Size(len(text.encode()), count(text) if count else {})


@dataclass
class ToolListSize:
    total: int  # bytes of the whole tools/list result
    toolsets: dict[str, int] = field(default_factory=dict)  # toolset -> bytes of its tools
    tools: dict[str, int] = field(default_factory=dict)  # tool -> bytes
    counts: dict[str, int] = field(default_factory=dict)  # toolset -> number of tools
    # The same in tokens, per encoding (empty when not counted).
    total_tokens: dict[str, int] = field(default_factory=dict)
    toolset_tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    tool_tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    core: Size | None = None  # tools/list of the core set alone
    operator: Size | None = None  # the operator's tools as its model gets them
    operator_tools: int = 0

    def of(self, *toolsets: str) -> int:
        return sum(self.toolsets[name] for name in toolsets)


def toolset_of_tools() -> dict[str, str]:
    """Tool name -> its toolset, for every installed toolset."""
    from forge_mcp.tools import all_toolsets

    return {cap.name: toolset.name for toolset in all_toolsets() for cap in toolset.capabilities}


def build_server() -> Any:
    """The MCP server with every toolset, as `forge-mcp stdio` builds it (no services: nothing is called)."""
    from mcp.server.subscriptions import InMemorySubscriptionBus

    from forge_mcp.capabilities import CapabilityRegistry, CapabilityRunner
    from forge_mcp.metrics import Metrics
    from forge_mcp.protocols.mcp_server import build_mcp_server
    from forge_mcp.tools import all_toolsets

    registry = CapabilityRegistry(all_toolsets())
    runner = CapabilityRunner(registry, services=None, metrics=Metrics())  # type: ignore[arg-type]
    return build_mcp_server(runner, auth_enabled=False, log_level="WARNING", subscriptions=InMemorySubscriptionBus())


async def list_tools_result() -> Any:
    """The `tools/list` result of a server with every toolset, through the in-process client."""
    from mcp import Client

    async with Client(build_server()) as client:
        return await client.list_tools()


def operator_tools() -> list[dict[str, Any]]:
    """The operator's tools as it sends them to its model (OPERATOR_TOOLSETS, chat-completion form)."""
    from forge_mcp.agents.operator_tools import capability_tool
    from forge_mcp.capabilities import CapabilityRegistry
    from forge_mcp.settings import OPERATOR_TOOLSETS
    from forge_mcp.tools import all_toolsets

    return [capability_tool(cap).as_openai() for cap in CapabilityRegistry(all_toolsets())
            if cap.toolset in OPERATOR_TOOLSETS]  # fmt: skip


def measure_result(result: Any, toolsets: dict[str, str] | None = None, count: Counter | None = None) -> ToolListSize:
    """The sizes of a tools/list result; with `count`, tokens too (and the core and operator sets)."""
    toolsets = toolsets if toolsets is not None else toolset_of_tools()
    whole = size_of(result, count)
    size = ToolListSize(total=whole.bytes, total_tokens=whole.tokens)
    for tool in result.tools:
        toolset = toolsets.get(tool.name, "?")
        one = size_of(tool, count)
        size.tools[tool.name] = one.bytes
        size.toolsets[toolset] = size.toolsets.get(toolset, 0) + one.bytes
        size.counts[toolset] = size.counts.get(toolset, 0) + 1
        if count:
            size.tool_tokens[tool.name] = one.tokens
            size.toolset_tokens[toolset] = (Size(0, size.toolset_tokens.get(toolset, {})) + one).tokens
    if count:
        core = result.model_copy(update={"tools": [t for t in result.tools if toolsets.get(t.name) in CORE_SET]})
        size.core = size_of(core, count)
        tools = operator_tools()
        size.operator, size.operator_tools = size_of(tools, count), len(tools)
    return size


async def measure(count: Counter | None = None) -> ToolListSize:
    return measure_result(await list_tools_result(), count=count)


def table(size: ToolListSize) -> str:
    """A Markdown table: bytes, and tokens per encoding when they were counted."""
    names = list(size.total_tokens)
    rows = ["| toolset | tools | bytes |" + "".join(f" {n} tokens |" for n in names),
            "|---|---:|---:|" + "---:|" * len(names)]  # fmt: skip

    def row(label: str, tools: int, one: Size, bold: bool = False) -> str:
        cells = [f"{one.bytes:,}", *(f"{one.tokens.get(n, 0):,}" for n in names)]
        cells = [f"**{cell}**" for cell in cells] if bold else cells
        return f"| {label} | {tools} | " + " | ".join(cells) + " |"

    for name, value in size.toolsets.items():
        rows.append(row(name, size.counts[name], Size(value, size.toolset_tokens.get(name, {}))))
    core_tools = sum(size.counts.get(name, 0) for name in CORE_SET)
    if size.core is not None:
        rows.append(row(f"**core set** ({' + '.join(CORE_SET)}), as listed", core_tools, size.core, bold=True))
    elif set(CORE_SET) <= set(size.toolsets):
        rows.append(row(" + ".join(CORE_SET), core_tools, Size(size.of(*CORE_SET))))
    if size.operator is not None:
        rows.append(row("**operator's set** (function tools)", size.operator_tools, size.operator, bold=True))
    rows.append(row("**whole list**", sum(size.counts.values()), Size(size.total, size.total_tokens), bold=True))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--tools", action="store_true", help="also list each tool's size")
    args = parser.parse_args(argv)
    try:
        count = token_counter()
    except RuntimeError as exc:
        parser.exit(1, f"{exc}\n")
    size = asyncio.run(measure(count))
    if args.json:
        print(json.dumps({
            "encodings": list(ENCODINGS),
            "total": {"bytes": size.total, "tokens": size.total_tokens},
            "core_set": {"toolsets": list(CORE_SET), "bytes": size.core.bytes, "tokens": size.core.tokens},
            "operator_set": {"tools": size.operator_tools, "bytes": size.operator.bytes, "tokens": size.operator.tokens},
            "toolsets": {name: {"tools": size.counts[name], "bytes": value, "tokens": size.toolset_tokens[name]}
                         for name, value in size.toolsets.items()},
            "tools": {name: {"bytes": value, "tokens": size.tool_tokens[name]} for name, value in size.tools.items()},
        }, indent=2))  # fmt: skip
        return
    print(table(size))
    if args.tools:
        print()
        print(f"{'bytes':>7}  " + "  ".join(f"{n:>11}" for n in ENCODINGS) + "  tool")
        for name, value in sorted(size.tools.items(), key=lambda item: -item[1]):
            print(f"{value:>7,}  " + "  ".join(f"{size.tool_tokens[name][n]:>11,}" for n in ENCODINGS) + f"  {name}")


if __name__ == "__main__":
    main()
