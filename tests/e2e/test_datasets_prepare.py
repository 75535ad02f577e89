"""dataset_prepare end to end: a messy CSV of support chats becomes a clean, deduplicated,
PII-redacted, split dataset with lineage — through MCP, once through A2A — and a worker
killed mid-prepare leaves no visible partial version."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from a2a.helpers import get_data_parts, new_data_part, new_message
from a2a.types import Role, SendMessageRequest, TaskState
from mcp import Client

from forge_mcp.jobs.executors.local import job_processes
from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.e2e.jobs_db import poll_until, read_jobs

pytestmark = pytest.mark.e2e

TOPICS = ("billing", "shipping", "refund")


def messy_support_csv(path: Path, rows: int = 60) -> None:
    lines = ["ticket,topic,messages"]
    for i in range(rows):
        topic = TOPICS[i % 3]
        chat = [{"role": "user", "content": f"  Ticket {i}: my {topic} issue   needs help with case number {i * 7919}.  "},
                {"role": "assistant", "content": f"We fixed {topic} case {i * 7919} for you."}]  # fmt: skip
        lines.append(f"{i},{topic}," + '"' + json.dumps(chat).replace('"', '""') + '"')
    dup = lines[5].split(",", 2)
    lines.append(f"{rows},{dup[1]},{dup[2]}")  # exact duplicate of ticket 4's chat
    pii_chat = [{"role": "user", "content": "Email me at pat@example.com, card 4111 1111 1111 1111"},
                {"role": "assistant", "content": "Please do not share card numbers."}]  # fmt: skip
    lines.append(f"{rows + 1},billing," + '"' + json.dumps(pii_chat).replace('"', '""') + '"')
    lines.append(f"{rows + 2},refund,\"[]\"")  # invalid: an empty chat
    path.write_text("\n".join(lines) + "\n")


async def test_prepare_through_mcp_makes_a_clean_split_version_with_lineage(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    messy_support_csv(home / "support.csv")
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await client.call_tool("dataset_import", {"path": "support.csv", "name": "support"})
            started = await client.call_tool(
                "dataset_prepare",
                {"dataset": "support", "split_method": "stratified", "split_column": "topic", "test_fraction": 0.2},
            )
            assert not started.is_error, started.content
            waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 120})
            listed = await client.call_tool("dataset_list", {"name": "support"})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job["error"]
    prepared = job["result"]["dataset"]
    assert prepared["id"] == "support@v2" and prepared["parent_id"] == "support@v1" and prepared["kind"] == "messages"
    steps = {s["step"]: s for s in prepared["steps"]}
    assert steps["import"]["dropped_unfit"] == 1  # the empty chat is skipped (and named) at import
    assert steps["normalise"]["rows_in"] == 62 and steps["normalise"]["rows_out"] == 62
    assert steps["dedup_exact"]["rows_in"] - steps["dedup_exact"]["rows_out"] == 1
    assert steps["pii_redact"]["detail"]["found"] == {"email": 1, "credit_card": 1}
    assert prepared["rows"] == 61 and prepared["report"]["splits"] == {"train": 49, "test": 12}
    assert [d["id"] for d in listed.structured_content["datasets"]] == ["support@v2", "support@v1"]
    rows = pq.read_table(home / "datasets" / "support" / "v2" / "data.parquet").to_pylist()
    texts = [json.loads(r["row"])["messages"][0]["content"] for r in rows]
    assert any("[EMAIL]" in t and "[CREDIT_CARD]" in t for t in texts)
    assert not any("pat@example.com" in t for t in texts)
    assert all(t == t.strip() and "   " not in t for t in texts)  # cleaned


async def test_prepare_through_a2a(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    messy_support_csv(home / "support.csv", rows=30)
    with ServerProcess(home) as live:
        async with a2a_client(live.url) as client:
            for tool, arguments in (("dataset_import", {"path": "support.csv", "name": "support"}),
                                    ("dataset_prepare", {"dataset": "support", "pii": "drop"})):  # fmt: skip
                message = new_message([new_data_part({"tool": tool, "arguments": arguments})], role=Role.ROLE_USER)
                events = [e async for e in client.send_message(SendMessageRequest(message=message))]
                final = [e.status_update.status.state for e in events if e.HasField("status_update")][-1]
                assert final == TaskState.TASK_STATE_COMPLETED, tool
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    result = get_data_parts(artifact.parts)[0]["result"]
    assert result["dataset"]["id"] == "support@v2"
    assert {s["step"]: s for s in result["steps"]}["pii_drop"]["detail"]["rows_dropped"] == 1


def test_killing_the_worker_mid_prepare_leaves_no_visible_version(tmp_path: Path) -> None:
    """40,000 rows: the first pass runs in a process pool. Killing the worker leaves no
    version and no pool process behind; job_resume then publishes the version."""
    import asyncio

    home = tmp_path / "ws"
    home.mkdir()
    rows = [{"text": f"document {i} " + " ".join(f"w{(i * j) % 997}" for j in range(60))} for i in range(40_000)]
    (home / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    async def start(url: str) -> str:
        async with Client(f"{url}/mcp/") as client:
            await client.call_tool("dataset_import", {"path": "corpus.jsonl", "name": "corpus"})
            started = await client.call_tool("dataset_prepare", {"dataset": "corpus"})
            return started.structured_content["job_id"]

    async def resume(url: str, job_id: str) -> dict:
        async with Client(f"{url}/mcp/") as client:
            again = await client.call_tool("job_resume", {"job_id": job_id})
            waited = await client.call_tool("job_wait", {"job_id": again.structured_content["job_id"], "timeout_s": 240})
            return waited.structured_content["job"]

    with ServerProcess(home, env={"FORGE_JOB_MAX_ATTEMPTS": "1"}) as live:
        job_id = asyncio.run(start(live.url))
        poll_until(lambda: any(r["id"] == job_id and r["state"] == "RUNNING" and r["pid"] for r in read_jobs(home)), 60, "prepare to run")
        [row] = [r for r in read_jobs(home) if r["id"] == job_id]
        os.kill(row["pid"], signal.SIGKILL)
        poll_until(lambda: [r for r in read_jobs(home) if r["id"] == job_id][0]["state"] == "FAILED", 30, "prepare to fail")
        poll_until(lambda: not job_processes(job_id), 30, "the pool processes to go")
        with sqlite3.connect(home / "forge.db") as db:
            versions = [r[0] for r in db.execute("SELECT id FROM datasets ORDER BY id")]
        assert versions == ["corpus@v1"]
        assert sorted(p.name for p in (home / "datasets" / "corpus").iterdir()) == ["v1"]
        resumed = asyncio.run(resume(live.url, job_id))
    assert resumed["state"] == "SUCCEEDED", resumed
    assert resumed["result"]["dataset"]["id"] == "corpus@v2"
    assert {s["step"]: s for s in resumed["result"]["steps"]}["normalise"]["rows_in"] == 40_000
