"""The two MCP calls every benchmark that drives a live server makes: a tool's structured
result (a refusal ends the benchmark with the server's message), and a job's final row."""

from __future__ import annotations

from typing import Any


async def call(client: Any, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content[0].text}")
    return result.structured_content


async def wait(client: Any, job_id: str) -> dict[str, Any]:
    """job_wait, called again while the job runs, until it has ended."""
    while True:
        waited = await call(client, "job_wait", {"job_id": job_id, "timeout_s": 600})
        if not waited["timed_out"]:
            return waited["job"]
