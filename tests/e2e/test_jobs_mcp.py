"""Jobs through MCP, stdio and HTTP: start a benchmark, watch progress notifications,
wait, read logs, metrics and the chart, cancel, and submit concurrently with one key. The
engine's own paths (cancel, idempotency, resource updates) run on a test_sleep started with
test_job_start, on a server with the test kinds on."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from forge_mcp.server_process import ServerProcess

pytestmark = pytest.mark.e2e

QUICK = {"seconds_per_test": 0.2, "backend": "numpy", "devices": ["cpu"]}


def sleep(seconds: float, **options: object) -> dict[str, object]:
    """test_job_start's arguments for a test_sleep of `seconds`."""
    return {"kind": "test_sleep", "arguments": {"seconds": seconds}, **options}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def run_benchmark_flow(client: Client) -> None:
    started = await client.call_tool("system_benchmark", QUICK)
    assert not started.is_error, started.content
    job_id = started.structured_content["job_id"]
    assert started.structured_content["state"] == "QUEUED"
    notes: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        notes.append((done, total, message))

    waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 60}, progress_callback=on_progress)
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED" and waited.structured_content["timed_out"] is False
    # job_wait streams the stage the job is at when it begins, then each later one. Under a
    # heavy load the job may be further on (or done) by then: the stages it had passed are
    # in its log, not re-sent. So: the stages seen are in order and end at "done", and the
    # matrix multiply's was seen whenever the wait began before it ended.
    assert notes[-1] == (3.0, 3.0, "RUNNING: done") or notes[-1][2] == "SUCCEEDED: done", notes
    assert [done for done, _, _ in notes] == sorted(done for done, _, _ in notes), notes
    if notes[0][0] == 0:
        assert any("matrix multiply" in (m or "") for _, _, m in notes), notes
    logs = await client.call_tool("job_logs", {"job_id": job_id})
    assert "matmul cpu" in logs.structured_content["text"]
    later = await client.call_tool("job_logs", {"job_id": job_id, "since": logs.structured_content["cursor"]})
    assert later.structured_content["text"] == ""
    metrics = await client.call_tool("job_metrics", {"job_id": job_id, "chart": True})
    names = {s["name"] for s in metrics.structured_content["series"]}
    assert {"matmul_gflops/cpu", "memory_bandwidth_gbs", "disk_write_mbs"} <= names
    [image] = [c for c in metrics.content if c.type == "image"]
    assert image.mime_type == "image/png" and base64.b64decode(image.data).startswith(PNG_MAGIC)
    resource = await client.read_resource(f"forge://jobs/{job_id}")
    assert json.loads(resource.contents[0].text)["state"] == "SUCCEEDED"
    overview = await client.call_tool("forge_overview", {})
    assert overview.structured_content["latest_benchmark"]["job_id"] == job_id


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_benchmark_job_over_stdio(tmp_path: Path, mode: str) -> None:
    params = StdioServerParameters(command=sys.executable, args=["-m", "forge_mcp", "--home", str(tmp_path / "ws"), "stdio"])
    async with Client(params, mode=mode) as client:
        await run_benchmark_flow(client)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_benchmark_job_over_http(server: ServerProcess, mode: str) -> None:
    async with Client(f"{server.url}/mcp/", mode=mode) as client:
        await run_benchmark_flow(client)


async def test_cancel_a_running_job_over_http(test_kinds_server: ServerProcess) -> None:
    async with Client(f"{test_kinds_server.url}/mcp/") as client:
        started = await client.call_tool("test_job_start", sleep(600))
        job_id = started.structured_content["job_id"]
        canceled = await client.call_tool("job_cancel", {"job_id": job_id})
        again = await client.call_tool("job_cancel", {"job_id": job_id})
        listed = await client.call_tool("job_list", {"state": ["CANCELED"]})
    assert canceled.structured_content["state"] == again.structured_content["state"] == "CANCELED"
    assert job_id in {j["id"] for j in listed.structured_content["jobs"]}


async def test_fifty_concurrent_submissions_with_one_key_over_http(test_kinds_server: ServerProcess) -> None:
    arguments = sleep(0.2, idempotency_key="one-benchmark-please")
    async with Client(f"{test_kinds_server.url}/mcp/") as client:
        results = await asyncio.gather(*(client.call_tool("test_job_start", arguments) for _ in range(50)))
        conflict = await client.call_tool("test_job_start", sleep(0.3, idempotency_key="one-benchmark-please"))
        await client.call_tool("job_wait", {"job_id": results[0].structured_content["job_id"], "timeout_s": 60})
    assert not any(r.is_error for r in results)
    assert len({r.structured_content["job_id"] for r in results}) == 1
    assert conflict.is_error and "idempotency_key 'one-benchmark-please' was already used" in conflict.content[0].text


async def test_job_tools_refuse_bad_ids_and_arguments(server: ServerProcess) -> None:
    async with Client(f"{server.url}/mcp/") as client:
        traversal = await client.call_tool("job_logs", {"job_id": "../../etc/passwd"})
        missing = await client.call_tool("job_status", {"job_id": "job_00000000dead"})
        device = await client.call_tool("system_benchmark", {"devices": ["tpu"]})
        no_gpu = await client.call_tool("system_benchmark", {"devices": ["cuda"]})
    assert traversal.is_error and "'job_id'" in traversal.content[0].text
    assert missing.is_error and "no job 'job_00000000dead'" in missing.content[0].text
    assert device.is_error and "devices: 'tpu' is not a device" in device.content[0].text
    assert no_gpu.is_error and "this server has no GPU" in no_gpu.content[0].text


async def test_job_changes_arrive_as_resource_updates(test_kinds_server: ServerProcess) -> None:
    """2026-07-28 clients `listen` to forge://jobs/{id} and hear each change of the job."""
    async with Client(f"{test_kinds_server.url}/mcp/") as client:
        started = await client.call_tool("test_job_start", sleep(1.5))
        uri = f"forge://jobs/{started.structured_content['job_id']}"
        updates = []
        async with client.listen(resource_subscriptions=[uri]) as subscription:
            assert subscription.honored.resource_subscriptions == [uri]

            async def collect() -> None:
                async for event in subscription:
                    updates.append(event)
                    if len(updates) >= 3:
                        return

            await asyncio.wait_for(collect(), 30)
    assert {u.uri for u in updates} == {uri}
