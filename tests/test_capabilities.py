"""The capability registry: one declaration gives a flat schema, one validation with
messages that name the field, scope checks, and internal errors that hide their detail."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import pytest
from mcp import Client
from pydantic import BaseModel, Field

from forge_mcp.capabilities import CapabilityRegistry, CapabilityRunner, Confirm, Toolset
from forge_mcp.errors import Forbidden, InternalError, InvalidArguments, NotFound, UnknownCapability
from forge_mcp.metrics import Metrics
from forge_mcp.protocols.mcp_server import build_mcp_server
from forge_mcp.security.principal import Principal
from tests.conftest import ALL_TOOLS


class Echo(BaseModel):
    text: str
    times: int


def make_toolset() -> Toolset:
    toolset = Toolset("demo", "Test capabilities.")

    @toolset.capability(scope="read", title="Echo", read_only=True)
    async def demo_echo(
        services: object,
        text: Annotated[str, Field(description="What to repeat", max_length=20)],
        times: Annotated[int, Field(ge=1, le=3, description="How often")] = 1,
        mode: Literal["plain", "loud"] = "plain",
    ) -> Echo:
        """Repeat `text` a few times. Read-only."""
        out = text.upper() if mode == "loud" else text
        return Echo(text=out * times, times=times)

    @toolset.capability(scope="train", title="Crash", destructive=True)
    async def demo_crash(services: object) -> Echo:
        """Always fails with an unexpected exception that mentions a host path."""
        raise RuntimeError("secret detail at /home/operator/.cache/model.bin")

    @toolset.capability(scope="read", title="Missing")
    async def demo_missing(services: object) -> Echo:
        """Fails with a project error."""
        raise NotFound("dataset 'x' does not exist; see dataset_list")

    return toolset


@pytest.fixture
def runner() -> CapabilityRunner:
    registry = CapabilityRegistry([make_toolset()])
    return CapabilityRunner(registry, services=object(), metrics=Metrics())  # type: ignore[arg-type]


def test_schema_is_flat_typed_and_described(runner: CapabilityRunner) -> None:
    cap = runner.registry.get("demo_echo")
    schema = cap.arguments.model_json_schema()
    assert set(schema["properties"]) == {"text", "times", "mode"}
    assert schema["required"] == ["text"]
    assert schema["properties"]["times"]["description"] == "How often"
    assert schema["additionalProperties"] is False
    assert cap.read_only and cap.idempotent and not cap.destructive


async def test_valid_call_returns_the_model(runner: CapabilityRunner) -> None:
    result = await runner.run("demo_echo", {"text": "ab", "times": 2}, Principal.local(), surface="cli")
    assert result == Echo(text="abab", times=2)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "'text' is required"),
        ({"text": "a", "times": 9}, "'times': Input should be less than or equal to 3"),
        ({"text": "a", "times": "many"}, "'times': Input should be a valid integer"),
        ({"text": "a", "colour": "red"}, "'colour' is not an argument of this tool"),
        ({"text": "a", "mode": "quiet"}, "'mode': Input should be 'plain' or 'loud'"),
    ],
)
async def test_bad_arguments_name_the_field(runner: CapabilityRunner, arguments: dict, expected: str) -> None:
    with pytest.raises(InvalidArguments) as err:
        await runner.run("demo_echo", arguments, Principal.local(), surface="cli")
    assert expected in err.value.message
    assert err.value.message.startswith("invalid arguments for demo_echo")


async def test_validation_errors_do_not_echo_input(runner: CapabilityRunner) -> None:
    with pytest.raises(InvalidArguments) as err:
        await runner.run("demo_echo", {"text": "x" * 5000}, Principal.local(), surface="cli")
    assert "xxxxxxxxxx" not in err.value.message


async def test_unknown_tool_lists_what_exists(runner: CapabilityRunner) -> None:
    with pytest.raises(UnknownCapability, match="unknown tool 'nope'; available tools: demo_echo"):
        await runner.run("nope", {}, Principal.local(), surface="cli")


async def test_scope_is_checked_before_running(runner: CapabilityRunner) -> None:
    reader = Principal(name="r", scopes=frozenset({"read"}))
    with pytest.raises(Forbidden, match="needs the 'train' scope"):
        await runner.run("demo_crash", {}, reader, surface="cli")
    admin = Principal(name="a", scopes=frozenset({"admin"}))
    assert await runner.run("demo_echo", {"text": "a"}, admin, surface="cli")


async def test_unexpected_exception_becomes_internal_error_with_logged_ref(
    runner: CapabilityRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="forge_mcp.capabilities"):
        with pytest.raises(InternalError) as err:
            await runner.run("demo_crash", {}, Principal.local(), surface="cli")
    assert "/home/operator" not in err.value.message
    assert f"ref {err.value.ref}" in err.value.message
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert err.value.ref in logged
    assert "secret detail" in caplog.text  # the detail stays in the server log


async def test_metrics_count_calls_by_outcome(runner: CapabilityRunner) -> None:
    metrics = runner._metrics  # noqa: SLF001 - the runner owns the counters under test
    await runner.run("demo_echo", {"text": "a"}, Principal.local(), surface="mcp")
    with pytest.raises(InvalidArguments):
        await runner.run("demo_echo", {}, Principal.local(), surface="mcp")
    sample = metrics.registry.get_sample_value
    assert sample("forge_tool_calls_total", {"tool": "demo_echo", "surface": "mcp", "outcome": "ok"}) == 1
    assert sample("forge_tool_calls_total", {"tool": "demo_echo", "surface": "mcp", "outcome": "invalid_arguments"}) == 1


def test_unknown_toolset_is_refused_with_the_choices() -> None:
    with pytest.raises(InvalidArguments, match="unknown toolset\\(s\\) nope; choose from demo"):
        CapabilityRegistry([make_toolset()], enabled=["nope"])


def test_declaration_rules_are_enforced() -> None:
    toolset = Toolset("bad", "x")
    with pytest.raises(TypeError, match="first parameter must be `services`"):

        @toolset.capability(scope="read", title="x")
        async def no_services(x: int) -> Echo:
            """Doc."""
            raise AssertionError

    with pytest.raises(TypeError, match="docstring"):

        @toolset.capability(scope="read", title="x")
        async def undocumented(services: object) -> Echo:
            raise AssertionError

    with pytest.raises(TypeError, match="pydantic model"):

        @toolset.capability(scope="read", title="x")
        async def returns_dict(services: object) -> dict:
            """Doc."""
            raise AssertionError


# The same capabilities through the real MCP client (in-memory transport).


@pytest.fixture
def mcp_server(runner: CapabilityRunner):  # noqa: ANN201
    from mcp.server.subscriptions import InMemorySubscriptionBus

    return build_mcp_server(runner, auth_enabled=False, log_level="WARNING", subscriptions=InMemorySubscriptionBus())


async def test_mcp_tool_schema_matches_the_declaration(mcp_server) -> None:  # noqa: ANN001
    async with Client(mcp_server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    echo = tools["demo_echo"]
    assert set(echo.input_schema["properties"]) == {"text", "times", "mode"}
    assert echo.input_schema["required"] == ["text"]
    assert echo.output_schema == {"type": "object", "required": ["text", "times"]}  # compact: see wire_schema
    assert echo.annotations.read_only_hint is True
    assert tools["demo_crash"].annotations.destructive_hint is True


async def test_mcp_errors_are_safe_and_name_the_field(mcp_server) -> None:  # noqa: ANN001
    async with Client(mcp_server) as client:
        missing = await client.call_tool("demo_echo", {})
        crash = await client.call_tool("demo_crash", {})
        forge_error = await client.call_tool("demo_missing", {})
    assert missing.is_error and "'text' is required" in missing.content[0].text
    assert crash.is_error and "internal error (ref " in crash.content[0].text
    assert "/home/operator" not in crash.content[0].text and "Traceback" not in crash.content[0].text
    assert forge_error.is_error and "dataset 'x' does not exist; see dataset_list" in forge_error.content[0].text


def test_tools_package_declares_core() -> None:
    from forge_mcp.tools import all_toolsets

    names = {cap.name for t in all_toolsets() for cap in t.capabilities}
    assert names == ALL_TOOLS
    for toolset in all_toolsets():
        for cap in toolset.capabilities:
            assert cap.name.count("_") >= 1 and cap.name == cap.name.lower()
            assert len(cap.description) < 1200


def test_package_data_is_found(tmp_path: Path) -> None:
    from forge_mcp.package_data import card_file, config_file

    assert "name:" in card_file("agent.yaml").read_text()
    assert "home:" in config_file("server", "default.yaml").read_text()


async def test_a_confirmation_is_injected_by_the_surface_and_not_asked_of_the_caller() -> None:
    toolset = Toolset("demo", "Test capabilities.")

    @toolset.capability(scope="train", title="Drop", destructive=True)
    async def demo_drop(services: object, confirm: Confirm, what: str) -> Echo:
        """Drops `what` once confirmed."""
        answer = await confirm(f"Drop {what}?")
        return Echo(text=f"{what}: {answer}", times=1)

    runner = CapabilityRunner(CapabilityRegistry([toolset]), services=object(), metrics=Metrics())  # type: ignore[arg-type]
    cap = runner.registry.get("demo_drop")
    assert set(cap.arguments.model_json_schema()["properties"]) == {"what"} and cap.injected == {"confirm": "confirm"}
    asked: list[str] = []

    async def no(message: str) -> bool | None:
        asked.append(message)
        return False

    cannot = await runner.run("demo_drop", {"what": "x"}, Principal.local(), surface="a2a")
    declined = await runner.run("demo_drop", {"what": "y"}, Principal.local(), surface="mcp", confirm=no)
    assert (cannot.text, declined.text, asked) == ("x: None", "y: False", ["Drop y?"])  # type: ignore[attr-defined]
