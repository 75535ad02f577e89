"""What MCP `tools/list` costs a client before it says a word: the size of the list as sent,
in total and per toolset, in bytes and ~tokens.

The list is fetched through the real MCP client from the server built in process with every
toolset, and each tool is measured as compact JSON in the form the SDK puts on the wire
(by alias, without nulls). A toolset's size is the sum of its tools; the total is the whole
`tools/list` result.

    .venv/bin/python -m benchmarks.tool_list_size            # a Markdown table
    .venv/bin/python -m benchmarks.tool_list_size --json     # the numbers
    .venv/bin/python -m benchmarks.tool_list_size --tools    # also each tool's bytes
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

BYTES_PER_TOKEN = 4  # a rough rule of thumb for JSON and English with common tokenizers


def wire_size(value: Any) -> int:
    """Bytes of `value` as compact JSON (a pydantic model as the SDK dumps it for the wire)."""
    if hasattr(value, "model_dump"):
        value = value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@dataclass
class ToolListSize:
    total: int  # bytes of the whole tools/list result
    toolsets: dict[str, int] = field(default_factory=dict)  # toolset -> bytes of its tools
    tools: dict[str, int] = field(default_factory=dict)  # tool -> bytes
    counts: dict[str, int] = field(default_factory=dict)  # toolset -> number of tools

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


def measure_result(result: Any, toolsets: dict[str, str] | None = None) -> ToolListSize:
    toolsets = toolsets if toolsets is not None else toolset_of_tools()
    size = ToolListSize(total=wire_size(result))
    for tool in result.tools:
        toolset = toolsets.get(tool.name, "?")
        size.tools[tool.name] = wire_size(tool)
        size.toolsets[toolset] = size.toolsets.get(toolset, 0) + size.tools[tool.name]
        size.counts[toolset] = size.counts.get(toolset, 0) + 1
    return size


async def measure() -> ToolListSize:
    return measure_result(await list_tools_result())


def tokens(size: int) -> int:
    return round(size / BYTES_PER_TOKEN)


def table(size: ToolListSize) -> str:
    rows = ["| toolset | tools | bytes | ~tokens |", "|---|---:|---:|---:|"]
    for name, value in size.toolsets.items():
        rows.append(f"| {name} | {size.counts[name]} | {value:,} | {tokens(value):,} |")
    core_jobs = size.of("core", "jobs") if {"core", "jobs"} <= set(size.toolsets) else 0
    rows.append(f"| core + jobs | {size.counts.get('core', 0) + size.counts.get('jobs', 0)} | {core_jobs:,} "
                f"| {tokens(core_jobs):,} |")
    rows.append(f"| **whole list** | {sum(size.counts.values())} | **{size.total:,}** | **{tokens(size.total):,}** |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--tools", action="store_true", help="also list each tool's size")
    args = parser.parse_args(argv)
    size = asyncio.run(measure())
    if args.json:
        print(json.dumps({"total": size.total, "toolsets": size.toolsets, "tools": size.tools}, indent=2))
        return
    print(table(size))
    if args.tools:
        print()
        for name, value in sorted(size.tools.items(), key=lambda item: -item[1]):
            print(f"{value:>7,}  {name}")


if __name__ == "__main__":
    main()
