"""Monitoring through the real server: system_history over MCP (Streamable HTTP, the official
client) returns the sampled series with unit-named fields and, asked for a chart, a PNG as
image content; bad input names its field and the fix; /metrics serves the new families; and
every metric the Grafana dashboard (configs/monitoring) queries exists on a live /metrics."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx
import pytest
from mcp import Client

from forge_mcp.package_data import config_file
from forge_mcp.server_process import ServerProcess
from tests.monitoring.support import FAMILIES
from tests.polling import until

pytestmark = pytest.mark.e2e

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SAMPLE_FIELDS = {"unix_time_s", "cpu_percent", "ram_used_bytes", "ram_total_bytes", "disk_free_bytes", "disk_total_bytes", "gpus"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# PromQL words that are not metric names: label lists after them and function calls are cut first.
LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


async def first_sample(client: Client) -> dict[str, Any]:
    """The server samples this machine as it starts: wait (bounded) for the first row."""
    answer: dict[str, Any] = {}

    async def sampled() -> bool:
        result = await client.call_tool("system_history", {"minutes": 10})
        answer.update(result.structured_content or {})
        return not result.is_error and bool(answer.get("samples"))

    await until(sampled, timeout_s=30, what="the server's first sample of this machine")
    return answer


async def test_system_history_returns_unit_named_series_and_a_png_chart(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "system_history")
        plain = await first_sample(client)
        charted = await client.call_tool("system_history", {"host": "local", "minutes": 10, "chart": True})
    assert tool.annotations.read_only_hint is True and tool.input_schema["properties"]["minutes"]["maximum"] == 10_080
    assert plain["host"] == "local" and plain["minutes"] == 10 and plain["note"] is None and plain["chart"] is None
    sample = plain["samples"][-1]
    assert set(sample) == SAMPLE_FIELDS
    assert 0 <= sample["cpu_percent"] <= 100 and 0 < sample["ram_used_bytes"] < sample["ram_total_bytes"]
    assert 0 < sample["disk_free_bytes"] <= sample["disk_total_bytes"] and isinstance(sample["gpus"], list)
    assert plain["last_seen_unix_s"] == sample["unix_time_s"]
    assert not charted.is_error, charted.content
    images = [c for c in charted.content if c.type == "image"]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(PNG_MAGIC)
    assert charted.structured_content["chart"]["data_base64"] == images[0].data  # the same chart, for clients that validate
    assert charted.structured_content["samples"]


async def test_an_unknown_host_or_a_window_out_of_range_is_refused_naming_the_field(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        unknown = await client.call_tool("system_history", {"host": "nowhere"})
        too_long = await client.call_tool("system_history", {"minutes": 5000})
        out_of_schema = await client.call_tool("system_history", {"minutes": 0})
    assert unknown.is_error
    assert "'host'" in unknown.content[0].text and "'nowhere' is not monitored" in unknown.content[0].text
    assert "'local'" in unknown.content[0].text and "compute_list" in unknown.content[0].text
    assert too_long.is_error
    assert "'minutes'" in too_long.content[0].text and "ask for 1440 or fewer" in too_long.content[0].text
    assert out_of_schema.is_error and "'minutes'" in out_of_schema.content[0].text


async def test_metrics_serves_the_job_queue_host_and_gpu_families(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        await first_sample(client)
    text = httpx.get(f"{server.url}/metrics").text
    for name in FAMILIES:
        assert f"# TYPE {name} gauge" in text, name
    assert 'forge_jobs{state="QUEUED"}' in text and 'forge_job_queue_depth{lane="gpu"} 0.0' in text
    assert re.search(r'^forge_host_cpu_ratio\{host="local"\} [0-9.e-]+$', text, re.MULTILINE)
    assert re.search(r'^forge_host_memory_total_bytes\{host="local"\} [1-9]', text, re.MULTILINE)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: strings, label matchers, range selectors and
    `by (...)`-style label lists cut out, then every identifier that is not called as a function
    (sum, rate, histogram_quantile, …) or a keyword."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = LABEL_LIST.sub(" ", expr)
    found = re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", expr)
    return {m.group(1) for m in found if not m.group(2) and m.group(1).lower() not in KEYWORDS}


def test_the_promql_reader_finds_only_metric_names() -> None:
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(forge_http_request_duration_seconds_bucket'
            '{route=~"mcp|a2a", status!="500"}[$__rate_interval])))')  # fmt: skip
    assert metric_names(expr) == {"forge_http_request_duration_seconds_bucket"}
    assert metric_names('forge_gpu_memory_used_bytes{host=~"$host"} / on (host, gpu) forge_gpu_memory_total_bytes') == {
        "forge_gpu_memory_used_bytes", "forge_gpu_memory_total_bytes"}  # fmt: skip
    assert metric_names("sum without (job_id) (forge_training_tokens_per_second) > bool 0") == {"forge_training_tokens_per_second"}


def dashboard() -> dict[str, Any]:
    return json.loads(config_file("monitoring", "forge-mcp-grafana.json").read_text())


def exposed_families(text: str) -> dict[str, str]:
    """Family name (as its TYPE line spells it: counters with _total) -> type."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))


def known(name: str, families: dict[str, str]) -> bool:
    if name in families:
        return True
    base = next((name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
    return base is not None and families.get(base) in ("histogram", "summary")


def test_the_grafana_dashboard_imports_with_a_prometheus_datasource_input() -> None:
    board = dashboard()
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [("DS_PROMETHEUS", "datasource", "prometheus")]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"]) and board["uid"] and board["id"] is None
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] and t["refId"] for t in panel["targets"]), panel["title"]
    titles = {p["title"] for p in panels}
    assert {"Jobs by state", "Queue depth by lane", "Training throughput", "GPU utilisation", "GPU memory used",
            "GPU temperature", "GPU power", "HTTP requests", "HTTP latency p95", "Tool calls", "Tool errors"} <= titles  # fmt: skip


def test_every_metric_the_dashboard_queries_exists_on_a_live_metrics(server: ServerProcess) -> None:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = set().union(*(metric_names(e) for e in exprs))
    # Grafana's label_values(metric, label) in the host variable is not PromQL: its first argument is the metric.
    variables = [v["query"]["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    used |= {re.match(r"label_values\(\s*([A-Za-z_:][\w:]*)", q).group(1) for q in variables}  # type: ignore[union-attr]
    assert {"forge_jobs", "forge_job_queue_depth", "forge_gpu_utilization_ratio", "forge_gpu_power_watts",
            "forge_training_tokens_per_second", "forge_http_requests_total", "forge_tool_calls_total",
            "forge_http_request_duration_seconds_bucket"} <= used  # fmt: skip
    families = exposed_families(httpx.get(f"{server.url}/metrics").text)
    missing = sorted(name for name in used if not known(name, families))
    assert not missing, f"the dashboard queries metrics /metrics does not serve: {missing}"
