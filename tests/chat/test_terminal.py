"""What `forge-mcp chat` shows of results and progress, and what the model reads of an MCP
tool result (forge_mcp.chat.terminal, forge_mcp.chat.mcp_toolbox.tool_outcome)."""

from __future__ import annotations

import io

from mcp.types import CallToolResult, ImageContent, TextContent, Tool, ToolAnnotations

from forge_mcp.agents.operator_tools import ToolOutcome
from forge_mcp.chat.mcp_toolbox import mcp_endpoint, operator_tool, tool_outcome
from forge_mcp.chat.terminal import Terminal, first_sentence, summarize


def test_a_result_is_summed_up_in_one_line() -> None:
    imported = {"dataset": {"id": "support@v1", "name": "support", "kind": "chat", "rows": 120}, "rows_read": 121,
                "detection": {"kind": "chat"}, "bad_lines": 1}  # fmt: skip
    assert summarize(imported) == "support@v1 chat (120 rows)"
    waited = {"job": {"id": "job_1", "kind": "train", "state": "RUNNING", "progress": {"done": 12, "total": 30}},
              "timed_out": True}  # fmt: skip
    assert summarize(waited) == "job_1 train RUNNING (12/30) timed out"
    assert summarize({"job_id": "job_2", "kind": "test_sleep", "state": "QUEUED", "next_step": "…"}) == "job_2 test_sleep QUEUED"
    assert summarize({"services": [{}, {}], "total": 2}) == "services: 2"
    assert summarize({"name": "forge-mcp", "version": "0.1.0", "toolsets": [1, 2]}) == "forge-mcp 0.1.0 toolsets: 2"
    assert len(summarize({"id": "x" * 500})) == 160


def test_first_sentence_keeps_an_example_whole() -> None:
    assert first_sentence("Moves a version to `stage`, e.g. staging. Asks first.") == "Moves a version to `stage`, e.g. staging."


def test_without_a_terminal_progress_is_an_occasional_plain_line() -> None:
    out = io.StringIO()
    term = Terminal(out, interactive=False, colour=False)
    term.tool_started("job_wait", {"job_id": "job_1", "timeout_s": 60})
    for done in range(1, 21):
        term.tool_progress("call_1", "job_wait", done, 20, f"step {done}/20")
    term.tool_finished("call_1", "job_wait", ToolOutcome("{}", data={"job": {"id": "job_1", "state": "SUCCEEDED"}}))
    term.tool_finished("call_2", "train_start", ToolOutcome("train_start: 'spec.max_steps' must be > 0\nmore", is_error=True))
    lines = out.getvalue().splitlines()
    assert lines[0] == '→ job_wait(job_id="job_1", timeout_s=60)'
    assert [line for line in lines if line.startswith("  … ")] == [
        "  … job_wait: 1/20 (5%) step 1/20", "  … job_wait: 5/20 (25%) step 5/20", "  … job_wait: 10/20 (50%) step 10/20",
        "  … job_wait: 15/20 (75%) step 15/20", "  … job_wait: 20/20 (100%) step 20/20",
    ]  # fmt: skip
    assert lines[-2:] == ["✓ job_wait: job_1 SUCCEEDED", "✗ train_start: train_start: 'spec.max_steps' must be > 0"]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


def test_on_a_terminal_the_bar_is_drawn_in_place_and_cleared() -> None:
    out = io.StringIO()
    term = Terminal(out, interactive=True, colour=True)
    term.text("Training")
    term.tool_progress("call_1", "job_wait", 3, 12, "loss 1.8")
    term.tool_progress("call_1", "job_wait", 6, 12, "loss 1.5")
    term.tool_finished("call_1", "job_wait", ToolOutcome("{}", data={"id": "job_1", "state": "SUCCEEDED"}))
    shown = out.getvalue()
    assert shown.startswith("Training\n\r\x1b[K")  # the text's line is ended before the bar
    assert "  job_wait [######------------------] 3/12 (25%) loss 1.8" in shown
    assert "  job_wait [############------------] 6/12 (50%) loss 1.5" in shown
    assert shown.endswith("\r\x1b[K\x1b[32m✓ job_wait: job_1 SUCCEEDED\x1b[0m\n")


def test_an_mcp_result_reaches_the_model_as_json_and_a_chart_as_an_attachment() -> None:
    chart = {"mime_type": "image/png", "data_base64": "iVBORw0K" * 100, "description": "line chart of 1 series"}
    result = CallToolResult(
        content=[TextContent(type="text", text="{…}"), ImageContent(type="image", data=chart["data_base64"], mime_type="image/png")],
        structured_content={"job_id": "job_1", "series": {"loss": [1.0]}, "chart": chart},
    )  # fmt: skip
    outcome = tool_outcome(result)
    assert outcome.data is not None and outcome.data["chart"]["data_base64"] == "<image/png, sent as an attachment>"
    assert "iVBORw0K" not in outcome.text and outcome.job_id is None  # job_metrics, not a job handle
    assert [(i.mime_type, i.description) for i in outcome.images] == [("image/png", "line chart of 1 series")]
    handle = tool_outcome(CallToolResult(content=[], structured_content={"job_id": "job_2", "next_step": "job_wait"}))
    assert handle.job_id == "job_2"
    plain = tool_outcome(CallToolResult(content=[TextContent(type="text", text="hello")]))
    assert (plain.text, plain.data, plain.is_error) == ("hello", None, False)
    failed = tool_outcome(CallToolResult(content=[TextContent(type="text", text="job_9: no such job")], is_error=True))
    assert (failed.text, failed.is_error) == ("job_9: no such job", True)


def test_annotations_decide_what_asks_first() -> None:
    def tool(annotations: ToolAnnotations | None) -> Tool:
        return Tool(name="t", description="d", input_schema={"type": "object", "properties": {}}, annotations=annotations)

    looking = operator_tool(tool(ToolAnnotations(read_only_hint=True)))
    assert looking.read_only and not looking.destructive
    assert operator_tool(tool(ToolAnnotations(destructive_hint=False))).destructive is False
    assert operator_tool(tool(ToolAnnotations(destructive_hint=True))).destructive is True
    assert operator_tool(tool(None)).destructive is True  # the spec's default for a tool that says nothing


def test_the_mcp_endpoint_of_a_server_url() -> None:
    assert mcp_endpoint("http://127.0.0.1:8765") == "http://127.0.0.1:8765/mcp/"
    assert mcp_endpoint("http://127.0.0.1:8765/mcp") == "http://127.0.0.1:8765/mcp/"
    assert mcp_endpoint("https://forge.lan/mcp/") == "https://forge.lan/mcp/"
