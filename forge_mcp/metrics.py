"""Prometheus metrics for one app instance (its own registry: no module-level state)."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

MAX_CACHED_CHILDREN = 1024
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ScrapedCollector(Collector):
    """A collector whose values are read when /metrics is asked (from the store, which is async):
    `refresh` is awaited before each rendering and `collect` yields what it read."""

    @abstractmethod
    async def refresh(self) -> None: ...


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

        # Labelled children by label values: `labels()` builds its key and takes a lock on every
        # call, a visible share of a small request. Bounded: label values past the cap (odd HTTP
        # methods) are still counted, just not kept here.
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}
        self._scraped: list[ScrapedCollector] = []

    def count_http_request(self, route: str, method: str, status: int, seconds: float) -> None:
        counter, latency = self._cached(("http", route, method, str(status)))
        counter.inc()
        latency.observe(seconds)

    def count_tool_call(self, tool: str, surface: str, outcome: str, seconds: float) -> None:
        counter, latency = self._cached(("tool", tool, surface, outcome))
        counter.inc()
        latency.observe(seconds)

    def _cached(self, key: tuple[str, ...]) -> tuple[Any, Any]:
        children = self._children.get(key)
        if children is None:
            if key[0] == "http":
                children = (self.http_requests.labels(route=key[1], method=key[2], status=key[3]),
                            self.http_latency.labels(route=key[1]))  # fmt: skip
            else:
                children = (self.tool_calls.labels(tool=key[1], surface=key[2], outcome=key[3]),
                            self.tool_latency.labels(tool=key[1]))  # fmt: skip
            if len(self._children) < MAX_CACHED_CHILDREN:
                self._children[key] = children
        return children

    def register(self, collector: ScrapedCollector) -> None:
        self.registry.register(collector)
        self._scraped.append(collector)

    async def scrape(self) -> bytes:
        """What /metrics serves: the scraped collectors refreshed, then everything rendered."""
        for collector in self._scraped:
            await collector.refresh()
        return self.render()

    def render(self) -> bytes:
        return generate_latest(self.registry)
