"""Prometheus metrics for one app instance (its own registry: no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "forge_http_requests_total",
            "HTTP requests by route family, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "forge_http_request_duration_seconds",
            "HTTP request latency by route family.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "forge_tool_calls_total",
            "Capability calls by tool, surface (mcp, a2a, cli) and outcome (ok or an error code).",
            ["tool", "surface", "outcome"],
            registry=self.registry,
        )
        self.tool_latency = Histogram(
            "forge_tool_call_duration_seconds",
            "Capability call latency by tool.",
            ["tool"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
