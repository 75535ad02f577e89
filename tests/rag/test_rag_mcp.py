"""RAG through the official MCP client, in process with the engine started, as an agent uses it:
rag_index (a job) on a folder of the fixture, job_wait, then rag_query; the results conform to
the listed output schemas (the client checks), and a refused path or an unknown index is a tool
error that says what to do. Then the chat operator, with its default toolsets, is offered both
tools and answers from a rag_query it makes (its model is the scripted LLM)."""

from __future__ import annotations

import json
import shutil
from typing import Any

from mcp import Client

from benchmarks.rag_recall import FIXTURES
from forge_mcp.agents.operator import Operator, ToolFinished, TurnEnded, open_checkpointer
from forge_mcp.agents.operator_model import OperatorModel
from forge_mcp.agents.operator_tools import CapabilityToolBox
from forge_mcp.app import ForgeApp
from forge_mcp.backends.scripted_llm import Call, ScriptedLLM, ToolCalls, Turns, offered_tools, tool_results
from forge_mcp.security.principal import Principal
from tests.rag.conftest import MODEL


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return result.structured_content


async def test_index_then_query_through_mcp(rag_app: ForgeApp) -> None:
    app = rag_app
    docs = app.workspace.root / "docs"
    (docs / "more").mkdir(parents=True)
    for name in ("sable-lighthouse.md", "stannary-bell.md", "mossbrick.md"):
        shutil.copy(FIXTURES / "corpus" / name, docs / name)
    shutil.copy(FIXTURES / "corpus" / "duskrail.md", docs / "more" / "duskrail.txt")
    (docs / "more" / "skip.csv").write_text("a,b\n1,2\n")  # not matched by the include patterns
    async with Client(app.mcp_server(over_http=False)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools["rag_query"].annotations.read_only_hint and not tools["rag_index"].annotations.read_only_hint
        started = await call(client, "rag_index", {"index": "docs", "paths": ["docs"], "embedding_model": MODEL,
                                                   "chunk_chars": 300, "overlap_chars": 60})  # fmt: skip
        assert started["kind"] == "rag_index" and started["state"] == "QUEUED"
        waited = await call(client, "job_wait", {"job_id": started["job_id"], "timeout_s": 240})
        job = waited["job"]
        assert job["state"] == "SUCCEEDED", job["error"]
        assert job["result"]["files_indexed"] == 4 and job["result"]["info"]["chunks"] == job["result"]["chunks_total"]
        found = await call(client, "rag_query", {"index": "docs", "query": "What colour is the light at Sable Point?", "k": 2})
        again = await call(client, "rag_index", {"index": "docs", "paths": ["docs"]})
        skipped = await call(client, "job_wait", {"job_id": again["job_id"], "timeout_s": 240})
        refused = await client.call_tool("rag_index", {"index": "docs", "paths": ["/etc"]})
        unknown = await client.call_tool("rag_query", {"index": "nope", "query": "light"})
    top = found["hits"][0]
    assert found["mode"] == "hybrid" and found["embedding_model"] == MODEL and len(found["hits"]) == 2
    assert top["source"] == "docs/sable-lighthouse.md" and "green" in top["text"]
    assert top["text"] == (docs / "sable-lighthouse.md").read_text()[top["start"] : top["end"]]
    assert skipped["job"]["result"]["files_unchanged"] == 4 and skipped["job"]["result"]["generation"] is None
    assert refused.is_error and "outside the workspace" in refused.content[0].text
    assert unknown.is_error and "no index 'nope'; the indexes are docs" in unknown.content[0].text

    # The operator's default toolsets include rag: it is offered both tools and answers from a query.
    offered: list[list[str]] = []

    def answer(body: dict[str, Any]) -> str:
        offered.append(offered_tools(body))
        return "From " + json.loads(tool_results(body, "rag_query")[0].content)["hits"][0]["source"]

    script = Turns([ToolCalls([Call("rag_query", {"index": "docs", "query": "Which lighthouse shows a green light?"})]),
                    answer])  # fmt: skip
    with ScriptedLLM({"lighthouse": script}) as llm:
        toolbox = CapabilityToolBox(app.runner, Principal.local(), app.settings.operator_toolsets)
        async with await open_checkpointer(app.workspace.root.parent / "threads.sqlite") as checkpointer:
            op = await Operator.create(OperatorModel("openai/scripted", llm.url), toolbox, checkpointer)
            events = [event async for event in op.send("t", "Which lighthouse is green? Look in the docs index.")]
    assert [e.name for e in events if isinstance(e, ToolFinished) and not e.outcome.is_error] == ["rag_query"]
    ended = events[-1]
    assert isinstance(ended, TurnEnded) and (ended.answer, ended.outcome) == ("From docs/sable-lighthouse.md", "answered")
    assert {"rag_index", "rag_query"} <= set(offered[0])
