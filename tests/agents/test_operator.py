"""The operator in-process, over the capability runner and the scripted LLM: what a turn
streams and keeps, and how it fails — a model endpoint that does not answer, arguments that
are not JSON, a call a crash left unanswered, a missing extra — each with a clear message and
a trace that trace_record's rules accept."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from forge_mcp.agents.operator import Operator, Question, ToolFinished, ToolStarted, TurnEnded, open_checkpointer
from forge_mcp.agents.operator_model import OperatorModel, check_model_name, resolve_model
from forge_mcp.agents.operator_tools import MAX_RESULT_CHARS, CapabilityToolBox, result_text
from forge_mcp.app import ForgeApp
from forge_mcp.backends.scripted_llm import Call, ScriptedLLM, ToolCalls, Turns, tool_results
from forge_mcp.errors import InvalidArguments, MissingExtra
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings
from forge_mcp.traces.models import TraceIn


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[ForgeApp]:
    forge = ForgeApp(load_settings(home=tmp_path / "ws", log_level="WARNING"))
    await forge.start(engine=False)
    yield forge
    await forge.stop()


async def operator(app: ForgeApp, url: str, traces: list[dict[str, Any]], principal: Principal | None = None,
                   checkpointer: Any = None) -> Operator:  # fmt: skip
    async def sink(trace: dict[str, Any]) -> None:
        traces.append(trace)

    toolbox = CapabilityToolBox(app.runner, principal or Principal.local(), app.settings.operator_toolsets)
    return await Operator.create(OperatorModel("openai/scripted", url), toolbox, checkpointer, trace_sink=sink)


async def turn(op: Operator, thread: str, text: str) -> list[Any]:
    return [event async for event in op.send(thread, text)]


async def test_a_turn_calls_tools_and_ends_as_a_valid_trace(app: ForgeApp, tmp_path: Path) -> None:
    def summary(body: dict[str, Any]) -> str:
        return f"{len(tool_results(body, 'dataset_list')[0].data['datasets'])} datasets, {tool_results(body)[0].name} first"

    script = Turns([ToolCalls([Call("forge_overview"), Call("dataset_list", {"limit": 5})], text="Looking."), summary])
    traces: list[dict[str, Any]] = []
    with ScriptedLLM({"What is here": script}) as llm:
        async with await open_checkpointer(tmp_path / "threads.sqlite") as checkpointer:
            op = await operator(app, llm.url, traces, checkpointer=checkpointer)
            events = await turn(op, "t", "What is here?")
            history = await op.history("t")
    started = [e.name for e in events if isinstance(e, ToolStarted)]
    finished = [e for e in events if isinstance(e, ToolFinished)]
    assert started == ["forge_overview", "dataset_list"] and not any(f.outcome.is_error for f in finished)
    assert events[-1] == TurnEnded(answer="0 datasets, forge_overview first", outcome="answered", trace=traces[0])
    checked = TraceIn.checked(traces[0])  # what trace_record would accept, as is
    assert [m.role for m in checked.messages] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert checked.tool_call_count() == 2 and checked.usage and checked.usage.prompt_tokens
    assert [m["role"] for m in history] == ["user", "assistant", "tool", "tool", "assistant"]


async def test_an_unreachable_model_fails_the_turn_with_its_address(app: ForgeApp, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    traces: list[dict[str, Any]] = []
    async with await open_checkpointer(tmp_path / "threads.sqlite") as checkpointer:
        op = await operator(app, url, traces, checkpointer=checkpointer)
        [ended] = await turn(op, "t", "Hello?")
    assert ended.outcome == "failed"
    assert ended.answer.startswith(f"the operator's model openai/scripted at {url} did not answer:")
    assert TraceIn.checked(traces[0]).outcome == "failed"


async def test_arguments_that_are_not_json_are_answered_not_run(app: ForgeApp, tmp_path: Path) -> None:
    script = Turns([ToolCalls([Call("dataset_list", {"limit": 5}, id="call_ok")]), "Fine."])
    traces: list[dict[str, Any]] = []
    with ScriptedLLM({"list": script}) as llm:
        async with await open_checkpointer(tmp_path / "threads.sqlite") as checkpointer:
            op = await operator(app, llm.url, traces, checkpointer=checkpointer)
            # The model's reply is rewritten on the way in to carry a broken call (as a real model may).
            original = op._llm

            class Broken:
                async def astream(self, messages: list[Any]) -> AsyncIterator[Any]:
                    from langchain_core.messages import AIMessageChunk

                    if len(messages) == 2:
                        yield AIMessageChunk(content="", tool_call_chunks=[
                            {"name": "dataset_list", "args": "limit=5, please", "id": "call_bad", "index": 0}])
                        return
                    async for chunk in original.astream(messages):
                        yield chunk

            op._llm = Broken()
            events = await turn(op, "t", "list them")
    [finished] = [e for e in events if isinstance(e, ToolFinished)]
    assert finished.outcome.is_error and finished.outcome.text.startswith("not run: the arguments are not valid JSON")
    assert TraceIn.checked(traces[0]).tool_call_count() == 1


async def test_a_call_left_unanswered_is_answered_before_the_next_message(app: ForgeApp, tmp_path: Path) -> None:
    script = Turns([ToolCalls([Call("model_archive", {"model": "bot@v1"}, id="call_archive")]), "Archived."])
    traces: list[dict[str, Any]] = []
    with ScriptedLLM({"Archive bot": script, "Anything else": "No."}) as llm:
        async with await open_checkpointer(tmp_path / "threads.sqlite") as checkpointer:
            op = await operator(app, llm.url, traces, checkpointer=checkpointer)
            [question] = await turn(op, "t", "Archive bot@v1")
            assert isinstance(question, Question) and question.text.startswith("Go ahead with model_archive(")
            assert await op.pending_question("t") == question.text
            # A new request instead of an answer is the answer: anything but yes declines.
            declined = await turn(op, "t", "Anything else?")
            after = await op.history("t")
    assert declined[-1].outcome == "answered"
    tool_messages = [m for m in after if m["role"] == "tool"]
    assert tool_messages[0]["content"].startswith("not run: the user declined ('Anything else?')")
    assert traces[0]["metadata"] == {"questions": 1, "declined": 1}


async def test_scopes_hold_through_the_operator(app: ForgeApp, tmp_path: Path) -> None:
    reader = Principal(name="reader", scopes=frozenset({"read"}))
    script = Turns([ToolCalls([Call("dataset_import", {"path": "x.jsonl", "name": "x"})]),
                    lambda body: tool_results(body)[0].content])  # fmt: skip
    traces: list[dict[str, Any]] = []
    with ScriptedLLM({"Import": script}) as llm:
        async with await open_checkpointer(tmp_path / "threads.sqlite") as checkpointer:
            op = await operator(app, llm.url, traces, principal=reader, checkpointer=checkpointer)
            events = await turn(op, "t", "Import x.jsonl")
    assert "the tool dataset_import needs the 'train' scope" in events[-1].answer


def test_results_are_cut_to_a_bounded_size() -> None:
    text = result_text({"rows": ["x" * 100] * 200})
    assert len(text) < MAX_RESULT_CHARS + 200 and text.endswith("ask for less, e.g. a smaller limit]")


async def test_model_names_and_the_missing_extra_are_refused_clearly(app: ForgeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InvalidArguments, match="operator_model: the operator has no model; set it"):
        check_model_name(None)
    with pytest.raises(InvalidArguments, match="is not a model name"):
        await resolve_model("openai/x; rm -rf", None, None, lookup=None)  # type: ignore[arg-type]
    monkeypatch.setattr("forge_mcp.extras._missing", lambda modules: list(modules))
    toolbox = CapabilityToolBox(app.runner, Principal.local(), ["core"])
    with pytest.raises(MissingExtra, match=r"pip install 'forge-mcp\[agent\]'"):
        await Operator.create(OperatorModel("openai/x"), toolbox, None)
