"""The chat operator: a langgraph agent that drives forge-mcp in plain language.

    model ──tool calls──▶ confirm (only before a destructive tool) ──yes──▶ tools ──▶ model
      │                      └──no──▶ model (each call answered "declined")
      └──no tool calls──▶ end of the turn

Its model is reached through litellm (agents/operator_model.py); its tools are the
capabilities, run by a ToolBox with the caller's rights (agents/operator_tools.py). Before a
destructive tool it asks: the graph stops at an interrupt, kept with the rest of the
conversation in a langgraph checkpointer on sqlite, and the person's next message is the
answer ("yes" runs it, anything else declines and reaches the model as said). A thread
(an A2A contextId, a `forge-mcp chat --thread`) resumes from the checkpointer after a restart.

A turn, from the person's message to the operator's answer, streams events (text as the
model writes it, each tool call, its progress and its result, a question), and when it ends
(answered, failed or cancelled) it is handed to a trace sink in OpenAI chat format with the
model, active latency and token usage.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

from forge_mcp.agents.operator_model import OperatorModel
from forge_mcp.agents.operator_tools import OperatorTool, ToolBox, ToolOutcome, call_text
from forge_mcp.extras import require_extra

log = logging.getLogger("forge_mcp.operator")

# Model calls and tool rounds in one turn (langgraph's recursion limit counts each node run).
MAX_GRAPH_STEPS = 60
YES_ANSWERS = frozenset({"y", "yes", "ok", "okay", "sure", "go", "go ahead", "confirm", "confirmed", "do it", "proceed"})
Outcome = Literal["answered", "failed", "cancelled"]

SYSTEM_PROMPT = """You are the operator of forge-mcp, a self-hosted server for fine-tuning, \
evaluating, exporting and serving language models on the user's own machines. You act through \
its tools, with the user's rights.
- When you do not know the state of the server, start with forge_overview.
- Prefer planning before acting: train_plan before train_start.
- A tool that starts a job returns a job_id at once: follow it with job_wait (it blocks up to \
timeout_s and reports progress), never by calling job_status in a loop. A job_wait that times \
out is not an error: call it again.
- Use the exact ids tools return (dataset ids, job ids, model versions); never invent them.
- Destructive steps (promote, archive, cancel, stop) are confirmed by the user before they run; \
if the user declines, do not retry: say what you did not do.
- If a tool refuses (missing rights, bad input), say so plainly with its reason; do not work around it.
- Answer briefly: what you did, the key figures (ids, losses, scores), and what the user may do next."""


# events a turn streams ---------------------------------------------------------------------


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolStarted:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ToolProgress:
    call_id: str
    name: str
    done: float
    total: float | None
    message: str | None


@dataclass(frozen=True)
class ToolFinished:
    call_id: str
    name: str
    outcome: ToolOutcome


@dataclass(frozen=True)
class Question:
    """The turn paused: the person's next message answers it."""

    text: str


@dataclass(frozen=True)
class TurnEnded:
    answer: str
    outcome: Outcome
    trace: dict[str, Any]  # the turn in trace_record's format


OperatorEvent = TextDelta | ToolStarted | ToolProgress | ToolFinished | Question | TurnEnded
TraceSink = Callable[[dict[str, Any]], Awaitable[None]]


def _state_type() -> type:
    """The graph's state: the conversation, and the confirmations asked in it (langgraph's
    message reducer, imported here so that this module imports without the agent extra)."""
    from langchain_core.messages import AnyMessage
    from langgraph.graph.message import add_messages

    # {turn, question, answer, confirmed} for each confirmation asked
    return TypedDict("OperatorState", {"messages": Annotated[list[AnyMessage], add_messages],
                                       "confirmations": Annotated[list[dict[str, Any]], operator.add]})  # fmt: skip


@dataclass
class Operator:
    """One conversation partner over a ToolBox. Build it with `Operator.create` inside
    `open_checkpointer` (the graph needs the checkpointer for as long as it runs)."""

    model: OperatorModel
    toolbox: ToolBox
    tools: list[OperatorTool]
    checkpointer: Any
    trace_sink: TraceSink | None = None
    system_prompt: str = SYSTEM_PROMPT
    tags: Sequence[str] = ("operator",)
    _graph: Any = field(default=None, repr=False)
    _llm: Any = field(default=None, repr=False)

    @classmethod
    async def create(cls, model: OperatorModel, toolbox: ToolBox, checkpointer: Any, *, llm: Any = None,
                     **options: Any) -> Operator:  # fmt: skip
        """`llm`: the chat model already bound to these tools (bind_tools), to share one between operators."""
        require_extra("agent", "the chat operator")
        tools = await toolbox.tools()
        operator_ = cls(model=model, toolbox=toolbox, tools=tools, checkpointer=checkpointer, **options)
        operator_._llm = llm if llm is not None else await bound_chat_model(model, tools)
        operator_._graph = operator_._build_graph()
        return operator_

    # the conversation ----------------------------------------------------------------------

    async def send(self, thread: str, text: str) -> AsyncIterator[OperatorEvent]:
        """The person's message: a new request, or the answer to the pending question."""
        from langchain_core.messages import HumanMessage
        from langgraph.types import Command

        config = self._config(thread)
        snapshot = await self._graph.aget_state(config)
        if snapshot.interrupts:
            request: Any = Command(resume=text)
        else:
            request = {"messages": [*_answer_dangling_calls(snapshot.values.get("messages", [])), HumanMessage(text)]}
        async for event in self._run(thread, config, request):
            yield event

    async def pending_question(self, thread: str) -> str | None:
        snapshot = await self._graph.aget_state(self._config(thread))
        return _question_of(snapshot.interrupts[0]) if snapshot.interrupts else None

    async def history(self, thread: str) -> list[dict[str, Any]]:
        """The thread's messages in OpenAI chat format (without the system prompt)."""
        from langchain_core.messages import convert_to_openai_messages

        snapshot = await self._graph.aget_state(self._config(thread))
        return convert_to_openai_messages(snapshot.values.get("messages", []))  # type: ignore[return-value]

    def _config(self, thread: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread}, "recursion_limit": MAX_GRAPH_STEPS}

    async def _run(self, thread: str, config: dict[str, Any], request: Any) -> AsyncIterator[OperatorEvent]:
        from langgraph.errors import GraphRecursionError

        failure: str | None = None
        question: Question | None = None
        try:
            # Read to the end even after the question: the graph saves its checkpoint as the stream closes.
            async for mode, chunk in self._graph.astream(request, config, stream_mode=["custom", "updates"]):
                if mode == "custom":
                    yield chunk
                elif "__interrupt__" in chunk:
                    question = Question(_question_of(chunk["__interrupt__"][0]))
        except asyncio.CancelledError:
            await self._end_turn(thread, config, "cancelled", "cancelled before the operator answered")
            raise
        except GraphRecursionError:
            failure = (f"the operator stopped after {MAX_GRAPH_STEPS} steps without an answer; "
                       "ask for something smaller, or say how to go on")  # fmt: skip
        except Exception as exc:  # the model's endpoint: unreachable, refusing, malformed
            log.warning("operator turn failed on thread %s", thread, exc_info=True)
            failure = _describe_model_error(self.model, exc)
        if question is not None and failure is None:
            yield question
        elif failure is not None:
            yield await self._end_turn(thread, config, "failed", failure)
        else:
            yield await self._end_turn(thread, config, "answered", None)

    async def _end_turn(self, thread: str, config: dict[str, Any], outcome: Outcome, failure: str | None) -> TurnEnded:
        snapshot = await self._graph.aget_state(config)
        messages = snapshot.values.get("messages", [])
        answer = failure if failure is not None else (_text_of(messages[-1]) if messages else "")
        trace = self._trace(thread, messages, snapshot.values.get("confirmations", []), outcome, failure)
        if self.trace_sink is not None:
            try:
                await self.trace_sink(trace)
            except Exception:  # a trace that could not be kept must not lose the answer
                log.warning("could not record the trace of a turn on thread %s", thread, exc_info=True)
        return TurnEnded(answer=answer, outcome=outcome, trace=trace)

    # the graph ------------------------------------------------------------------------------

    def _build_graph(self) -> Any:
        from langgraph.graph import END, START, StateGraph

        graph = StateGraph(_state_type())
        graph.add_node("model", self._model_node)
        graph.add_node("confirm", self._confirm_node, destinations=("tools", "model"))
        graph.add_node("tools", self._tools_node)
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", self._after_model, ["confirm", "tools", END])
        graph.add_edge("tools", "model")
        return graph.compile(checkpointer=self.checkpointer)

    def _after_model(self, state: dict[str, Any]) -> str:
        from langgraph.graph import END

        calls = _calls_of(state["messages"][-1])
        if not calls:
            return END
        destructive = {t.name for t in self.tools if t.destructive}
        return "confirm" if any(call["name"] in destructive for call in calls) else "tools"

    async def _model_node(self, state: dict[str, Any]) -> dict[str, Any]:
        from langchain_core.messages import AIMessage
        from langgraph.config import get_stream_writer

        write = get_stream_writer()
        started = time.perf_counter()
        reply: Any = None
        async for chunk in self._llm.astream([*self._system_messages(), *state["messages"]]):
            if isinstance(chunk.content, str) and chunk.content:
                write(TextDelta(chunk.content))
            reply = chunk if reply is None else reply + chunk
        if reply is None:
            raise RuntimeError("the model's stream ended without a message")
        # A call whose arguments are not JSON stays a call (answered with the error), so the
        # conversation stays well formed for the next request and for its trace.
        invalid = {bad.get("id") or f"call_invalid_{i}": bad for i, bad in enumerate(reply.invalid_tool_calls or [])}
        calls = [*reply.tool_calls, *({"name": bad.get("name") or "unknown", "args": {}, "id": ident, "type": "tool_call"}
                                      for ident, bad in invalid.items())]  # fmt: skip
        message = AIMessage(
            content=reply.content, tool_calls=calls, usage_metadata=reply.usage_metadata, id=reply.id,
            response_metadata={"latency_ms": round((time.perf_counter() - started) * 1000),
                               "invalid_calls": {ident: str(bad.get("error") or "unparsable") for ident, bad in invalid.items()}},
        )  # fmt: skip
        return {"messages": [message]}

    def _confirm_node(self, state: dict[str, Any]) -> Any:
        from langchain_core.messages import HumanMessage, ToolMessage
        from langgraph.types import Command, interrupt

        calls = _calls_of(state["messages"][-1])
        destructive = {t.name for t in self.tools if t.destructive}
        asked = [call for call in calls if call["name"] in destructive]
        question = "Go ahead with " + "; ".join(call_text(call["name"], call["args"]) for call in asked) + "? (yes/no)"
        reply = str(interrupt({"question": question}))
        confirmed = reply.strip().strip(".!").lower() in YES_ANSWERS
        turn = sum(1 for m in state["messages"] if isinstance(m, HumanMessage))
        record = {"turn": turn, "question": question, "answer": reply, "confirmed": confirmed}
        if confirmed:
            return Command(goto="tools", update={"confirmations": [record]})
        declined = [
            ToolMessage(content=f"not run: the user declined ({reply[:200]!r}); nothing was changed",
                        tool_call_id=call["id"], name=call["name"], status="error")
            for call in calls
        ]  # fmt: skip
        return Command(goto="model", update={"messages": declined, "confirmations": [record]})

    async def _tools_node(self, state: dict[str, Any]) -> dict[str, Any]:
        from langchain_core.messages import ToolMessage
        from langgraph.config import get_stream_writer

        write = get_stream_writer()
        last = state["messages"][-1]
        invalid = last.response_metadata.get("invalid_calls", {})
        answers = []
        for call in _calls_of(last):
            write(ToolStarted(call["id"], call["name"], call["args"]))

            async def progress(done: float, total: float | None = None, message: str | None = None,
                               _call: dict[str, Any] = call) -> None:  # fmt: skip
                write(ToolProgress(_call["id"], _call["name"], done, total, message))

            started = time.perf_counter()
            if call["id"] in invalid:
                outcome = ToolOutcome(f"not run: the arguments are not valid JSON ({invalid[call['id']]})", is_error=True)
            else:
                outcome = await self.toolbox.call(call["name"], call["args"], progress)
            write(ToolFinished(call["id"], call["name"], outcome))
            artifact = {"data": outcome.data, "job_id": outcome.job_id,
                        "latency_ms": round((time.perf_counter() - started) * 1000)}  # fmt: skip
            answers.append(ToolMessage(content=outcome.text, tool_call_id=call["id"], name=call["name"],
                                       status="error" if outcome.is_error else "success", artifact=artifact))  # fmt: skip
        return {"messages": answers}

    def _system_messages(self) -> list[Any]:
        """The system message; none when the prompt is blank (a template that renders to nothing:
        for a model trained without system messages, which one would only confuse)."""
        from langchain_core.messages import SystemMessage

        return [SystemMessage(self.system_prompt)] if self.system_prompt.strip() else []

    # traces ---------------------------------------------------------------------------------

    def _trace(self, thread: str, messages: list[Any], confirmations: list[dict[str, Any]], outcome: Outcome,
               failure: str | None) -> dict[str, Any]:  # fmt: skip
        from langchain_core.messages import (
            AIMessage,
            HumanMessage,
            ToolMessage,
            convert_to_openai_messages,
        )

        start = max((i for i, m in enumerate(messages) if isinstance(m, HumanMessage)), default=0)
        turn = messages[start:]
        openai = convert_to_openai_messages([*self._system_messages(), *turn])
        if failure is not None or not (turn and isinstance(turn[-1], AIMessage) and not _calls_of(turn[-1])):
            openai.append({"role": "assistant", "content": failure or "(no answer)"})
        latency = sum(m.response_metadata.get("latency_ms", 0) for m in turn if isinstance(m, AIMessage))
        latency += sum((m.artifact or {}).get("latency_ms", 0) for m in turn if isinstance(m, ToolMessage))
        used = [m.usage_metadata for m in turn if isinstance(m, AIMessage) and m.usage_metadata]
        usage = {"prompt_tokens": sum(u.get("input_tokens", 0) for u in used),
                 "completion_tokens": sum(u.get("output_tokens", 0) for u in used)} if used else None  # fmt: skip
        number = sum(1 for m in messages if isinstance(m, HumanMessage))
        asked = [c for c in confirmations if c.get("turn") == number]
        return {
            "messages": openai,
            "model": self.model.name,
            "latency_ms": latency,
            "usage": usage,
            "outcome": outcome,
            "thread": thread,
            "tags": list(self.tags),
            "metadata": {"questions": len(asked), "declined": sum(1 for c in asked if not c["confirmed"])},
        }


# helpers -------------------------------------------------------------------------------------


def _calls_of(message: Any) -> list[dict[str, Any]]:
    return list(getattr(message, "tool_calls", None) or [])


def _text_of(message: Any) -> str:
    content = getattr(message, "content", "")
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def _question_of(interrupt: Any) -> str:
    value = getattr(interrupt, "value", interrupt)
    return str(value.get("question")) if isinstance(value, dict) else str(value)


def _answer_dangling_calls(messages: list[Any]) -> list[Any]:
    """Tool calls a crash (or a cancel) left unanswered: a chat API refuses a conversation with
    them, so each gets an answer saying its effect is unknown before the next message."""
    from langchain_core.messages import ToolMessage

    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    last_calls = next((_calls_of(m) for m in reversed(messages) if _calls_of(m)), [])
    return [
        ToolMessage(content="interrupted before it finished: its effect is unknown; check with job_list or the "
                    "matching list tool before trying again", tool_call_id=call["id"], name=call["name"], status="error")
        for call in last_calls
        if call["id"] not in answered
    ]  # fmt: skip


def _describe_model_error(model: OperatorModel, exc: Exception) -> str:
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    where = f" at {model.api_base}" if model.api_base else ""
    return f"the operator's model {model.name}{where} did not answer: {detail}"


async def bound_chat_model(model: OperatorModel, tools: Sequence[OperatorTool]) -> Any:
    """The chat model with the tools bound. litellm's first import takes seconds: it runs off
    the event loop, which keeps answering meanwhile."""
    return await asyncio.to_thread(lambda: model.chat_model().bind_tools([tool.as_openai() for tool in tools]))


async def open_checkpointer(path: Path) -> Any:
    """A langgraph checkpointer on sqlite at `path` (an async context manager)."""
    require_extra("agent", "the chat operator")
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path.parent.mkdir(parents=True, exist_ok=True)
    return AsyncSqliteSaver.from_conn_string(str(path))
