"""What `tools/list` costs every MCP client: the budget (README "What tools/list costs"),
measured the same way as the README table, and the compaction that keeps it there without
losing what an agent needs to call a tool right or what a client validates results with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from jsonschema import Draft202012Validator
from mcp import Client
from pydantic import BaseModel, Field

from benchmarks.tool_list_size import CORE_SET, build_server, list_tools_result, measure_result, table, token_counter
from forge_mcp.app import ForgeApp
from forge_mcp.protocols.wire_schema import input_schema, output_schema
from forge_mcp.settings import OPERATOR_TOOLSETS, load_settings
from forge_mcp.tools import all_toolsets
from tests.conftest import ALL_TOOLS

WHOLE_LIST_BUDGET = 32_000  # bytes of the whole tools/list result, for the toolsets it was set for (issue 11)
# Toolsets added since, each with its own budget on top: a new capability pays for itself,
# and the first 29 tools keep theirs.
LATER_TOOLSETS = {"sweeps": 4_000, "workflows": 4_000, "flywheel": 8_600, "prompts": 3_500, "rag": 3_500, "compute": 3_500,
                  "monitor": 1_500}
CORE_JOBS_BUDGET = 8_000  # bytes of the core and jobs toolsets' tools, what a minimal client lists
# Tokens (tiktoken o200k_base, the GPT-4o family) of tools/list for the core set alone, as a
# client with --toolsets core,jobs gets it (issue 15).
CORE_SET_TOKEN_BUDGET = 2_000
# Keywords an agent calls with: none may be lost on the way to the wire.
CALL_FACTS = ("description", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
              "pattern", "enum", "const", "default", "minItems", "maxItems", "format")  # fmt: skip


@pytest.fixture
async def listed() -> Any:
    return await list_tools_result()


async def test_tools_list_fits_its_budget(listed: Any) -> None:
    size = measure_result(listed)
    assert {tool.name for tool in listed.tools} == ALL_TOOLS
    shown = table(size)
    later = {name: size.of(name) for name in LATER_TOOLSETS}
    assert size.total - sum(later.values()) <= WHOLE_LIST_BUDGET, shown
    assert all(later[name] <= budget for name, budget in LATER_TOOLSETS.items()), shown
    assert size.of("core", "jobs") <= CORE_JOBS_BUDGET, shown
    assert sum(size.toolsets.values()) < size.total  # the per-toolset numbers are parts of the whole


async def test_the_core_set_fits_its_token_budget(listed: Any) -> None:
    pytest.importorskip("tiktoken", reason="token counts need tiktoken: pip install 'forge-mcp[agent]'")
    size = measure_result(listed, count=token_counter())
    shown = table(size)
    assert CORE_SET == ("core", "jobs") and size.core is not None and size.operator is not None
    assert size.core.tokens["o200k_base"] <= CORE_SET_TOKEN_BUDGET, shown
    # The counts are real and consistent: parts of the whole list, in both encodings.
    for name in ("o200k_base", "cl100k_base"):
        assert 0 < size.core.tokens[name] < size.total_tokens[name], shown
        assert sum(tokens[name] for tokens in size.toolset_tokens.values()) < size.total_tokens[name], shown
    assert size.operator_tools == sum(size.counts[name] for name in size.toolsets if name in OPERATOR_TOOLSETS)


def keywords(node: Any) -> set[str]:
    """The schema keywords used anywhere in a schema (not the names of its properties)."""
    if isinstance(node, list):
        return set().union(*(keywords(item) for item in node))
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        if key in ("properties", "$defs"):
            found |= set().union(*(keywords(v) for v in value.values()))
        elif key not in ("enum", "const", "default", "required"):
            found |= keywords(value)
    return found


async def test_descriptions_stay_short_and_nothing_is_said_twice(listed: Any) -> None:
    for tool in listed.tools:
        assert tool.title and tool.description and len(tool.description) <= 600, tool.name
        assert tool.annotations.title is None and tool.meta is None
        assert not keywords([tool.input_schema, tool.output_schema]) & {"title", "$ref", "anyOf"}, tool.name


def facts(node: Any, defs: dict[str, Any], seen: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """(keyword, value) for every keyword an agent calls with, anywhere in the schema ($refs followed)."""
    found: set[tuple[str, str]] = set()
    if isinstance(node, list):
        for item in node:
            found |= facts(item, defs, seen)
    if not isinstance(node, dict):
        return found
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] not in seen:
        found |= facts(defs[ref[8:]], defs, (*seen, ref[8:]))
    for key, value in node.items():
        if key == "properties":
            for name, schema in value.items():
                found |= {(f"{name}.{k}", v) for k, v in facts(schema, defs, seen)}
        elif key in CALL_FACTS and value is not None:
            kept = [v for v in value if v is not None] if key == "enum" else value
            found.add((key, json.dumps(kept, sort_keys=True)))
        elif key not in ("$defs", "default", "enum", "const", "required") and isinstance(value, dict | list):
            found |= facts(value, defs, seen)
    return found


async def test_every_input_schema_keeps_names_required_bounds_enums_defaults_and_descriptions(listed: Any) -> None:
    from mcp.server import MCPServer

    # What the SDK derives, against what goes on the wire.
    derived = {tool.name: tool.input_schema for tool in await MCPServer.list_tools(build_server())}
    for tool in listed.tools:
        original, compact = derived[tool.name], tool.input_schema
        Draft202012Validator.check_schema(compact)
        assert list(compact["properties"]) == list(original["properties"]), tool.name
        assert compact.get("required", []) == original.get("required", []), tool.name
        assert facts(compact, {}) == facts(original, original.get("$defs", {})), tool.name


def test_every_output_schema_lists_every_field_a_result_carries() -> None:
    for toolset in all_toolsets():
        for cap in toolset.capabilities:
            compact = output_schema(cap.output.model_json_schema(by_alias=True))
            Draft202012Validator.check_schema(compact)
            fields = cap.output.model_fields
            # A result is the model dumped whole (by alias): every field is there, so each may be required.
            assert not [name for name, info in fields.items() if info.exclude], cap.name
            assert compact == {"type": "object", "required": [info.alias or name for name, info in fields.items()]}


class Stage(BaseModel):
    name: Literal["draft", "final"]
    note: str | None = None


class Tree(BaseModel):
    label: str
    children: list[Tree] = Field(default_factory=list)


class Awkward(BaseModel):
    """Every shape the compaction rewrites: nullable scalars, enums and models, lists of
    models, a recursive model, a union, a field named title, defaults null and not."""

    title: Annotated[str, Field(max_length=5, description="A field called title")]
    count: int | None = Field(None, ge=1, le=3)
    level: int | None = Field(2, ge=0)
    mode: Literal["a", "b"] | None = None
    stage: Stage | None = None
    stages: list[Stage] = Field(default_factory=list)
    tree: Tree | None = None
    either: int | list[str] = 0
    extra: dict[str, Any] | None = None


@pytest.mark.parametrize(
    ("instance", "valid"),
    [
        ({"title": "ab"}, True),
        ({"title": "toolong"}, False),
        ({}, False),
        ({"title": "a", "count": 3, "level": None, "mode": "b"}, True),  # level's null is a real value: kept
        ({"title": "a", "count": 4}, False),
        ({"title": "a", "mode": "c"}, False),
        ({"title": "a", "stage": {"name": "draft"}, "stages": [{"name": "final", "note": None}]}, True),
        ({"title": "a", "stage": {"name": "other"}}, False),
        ({"title": "a", "stages": [{"note": "x"}]}, False),
        ({"title": "a", "tree": {"label": "r", "children": [{"label": "c", "children": []}]}}, True),
        ({"title": "a", "tree": {"label": "r", "children": [{"children": []}]}}, False),
        ({"title": "a", "either": ["x"], "extra": {"k": 1}}, True),
        ({"title": "a", "either": 1.5}, False),
    ],
)
def test_a_compact_input_schema_accepts_and_refuses_what_the_original_does(instance: dict, valid: bool) -> None:
    original = Awkward.model_json_schema()
    compact = input_schema(original)
    assert Draft202012Validator(original).is_valid(instance) is valid
    assert Draft202012Validator(compact).is_valid(instance) is valid
    # Optional arguments whose default is null show their plain type; null itself is left to the server.
    assert compact["properties"]["count"]["type"] == "integer" and compact["properties"]["mode"]["enum"] == ["a", "b"]
    assert compact["properties"]["level"]["type"] == ["integer", "null"]
    assert compact["properties"]["title"] == {"description": "A field called title", "maxLength": 5, "type": "string"}
    assert list(compact.get("$defs", {})) == ["Tree"]  # only the recursive model keeps a definition


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    forge = ForgeApp(load_settings(home=tmp_path / "ws", log_level="WARNING"))
    await forge.start(engine=False)  # jobs are queued, not run
    yield forge
    await forge.stop()


async def test_real_results_validate_against_the_listed_output_schemas(app: ForgeApp) -> None:
    """The SDK client checks each result's structured content against the listed output
    schema and raises when it does not conform: these calls pass only if the compact
    schemas accept real results, and each result carries exactly the listed fields."""
    rows = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(5)]
    (app.workspace.root / "qa.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    async with Client(app.mcp_server(over_http=False)) as client:
        await _call_and_check(client)


async def _call_and_check(client: Client) -> None:
    schemas = {tool.name: tool.output_schema for tool in (await client.list_tools()).tools}
    started = await client.call_tool("system_benchmark", {"seconds_per_test": 0.1, "devices": ["cpu"]})
    assert list(started.structured_content) == schemas["system_benchmark"]["required"]
    job_id = started.structured_content["job_id"]
    calls = {
        "forge_overview": {},
        "system_status": {"sample_seconds": 0.05},
        "dataset_import": {"path": "qa.jsonl", "name": "qa"},
        "dataset_list": {},
        "dataset_inspect": {"dataset": "qa"},
        "job_list": {},
        "job_status": {"job_id": job_id},
        "job_wait": {"job_id": job_id, "timeout_s": 0},
        "job_cancel": {"job_id": job_id},
        "model_list": {},
        "serve_list": {},
    }
    checked = {"system_benchmark"}
    for name, arguments in calls.items():
        result = await client.call_tool(name, arguments)
        assert not result.is_error, (name, result.content)
        assert list(result.structured_content) == schemas[name]["required"], name
        checked.add(name)
    assert len(checked) == 12
