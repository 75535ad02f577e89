"""The ledger of A2A tasks this server runs, and how they are settled.

A task that runs a long tool *is* its job: it follows the job's progress and ends with
it. When the server restarts, the executor that followed a task is gone; the ledger
settles such tasks from their job (at once if it ended, or when it ends), and fails
tasks of immediate tools that were cut off, so no task stays WORKING forever.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from a2a.helpers import new_data_part, new_text_part
from a2a.server.context import ServerCallContext
from a2a.server.tasks import TaskStore
from a2a.types import Artifact, Message, Part, Role, TaskState, TaskStatus
from google.protobuf.timestamp_pb2 import Timestamp

from forge_mcp.agents.a2a_owners import TaskOwner
from forge_mcp.jobs.constants import WAIT_MAX_S
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.states import JobState
from forge_mcp.store import Store

log = logging.getLogger("forge_mcp.a2a")

PRUNE_BATCH = 500  # ids per DELETE: well under sqlite's bound-parameter limit
TERMINAL_TASK_STATES = frozenset(
    {TaskState.TASK_STATE_COMPLETED, TaskState.TASK_STATE_FAILED, TaskState.TASK_STATE_CANCELED, TaskState.TASK_STATE_REJECTED}
)


def job_outcome(job: Job) -> tuple[TaskState, list[Part], str]:
    """The A2A state, artifact parts and status text for a finished job."""
    if job.state is JobState.SUCCEEDED:
        return TaskState.TASK_STATE_COMPLETED, [new_data_part({"job_id": job.id, "result": job.result})], (
            f"job {job.id} succeeded"
        )
    if job.state is JobState.CANCELED:
        return TaskState.TASK_STATE_CANCELED, [], f"job {job.id} was canceled"
    return TaskState.TASK_STATE_FAILED, [], f"job {job.id} failed ({job.reason}): {job.error or 'no detail'}"


def progress_text(job: Job) -> str:
    share = f" {job.progress.percent:.0f}%" if job.progress.percent is not None else ""
    detail = f" — {job.progress.message}" if job.progress.message else ""
    return f"job {job.id} {job.state.value}{share}{detail}"


class A2ATaskLedger:
    def __init__(self, store: Store, engine: JobEngine) -> None:
        self._store = store
        self._engine = engine
        self.active: set[str] = set()  # tasks an executor in this process is following now
        self._followers: set[asyncio.Task[None]] = set()
        self._pruner: asyncio.Task[None] | None = None

    async def track(self, task_id: str, context_id: str, owner: str, tool: str) -> None:
        self.active.add(task_id)
        # A task the operator parked on a question was settled; the caller's answer opens it again.
        await self._store.execute(
            "INSERT INTO a2a_task_ledger (task_id, context_id, owner, tool) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (task_id) DO UPDATE SET settled = 0",
            (task_id, context_id, owner, tool),
        )

    async def attach_job(self, task_id: str, job_id: str) -> None:
        await self._store.execute("UPDATE a2a_task_ledger SET job_id = ? WHERE task_id = ?", (job_id, task_id))

    async def job_for(self, task_id: str) -> str | None:
        row = await self._store.fetchone("SELECT job_id FROM a2a_task_ledger WHERE task_id = ?", (task_id,))
        return row["job_id"] if row else None

    async def settled(self, task_id: str) -> None:
        self.active.discard(task_id)
        await self._store.execute("UPDATE a2a_task_ledger SET settled = 1 WHERE task_id = ?", (task_id,))

    async def reconcile(self, task_store: TaskStore) -> None:
        """At start-up, after the job engine has reconciled its jobs."""
        rows = await self._store.fetchall("SELECT * FROM a2a_task_ledger WHERE settled = 0")
        for row in rows:
            if row["task_id"] in self.active:
                continue
            if row["job_id"] is None:
                await self._settle(task_store, dict(row), TaskState.TASK_STATE_FAILED, [],
                                   "the server restarted while this task ran; send the request again")  # fmt: skip
                continue
            job = await self._engine.repo.get(row["job_id"])
            if job.terminal:
                await self._settle(task_store, dict(row), *job_outcome(job))
            else:
                follower = asyncio.create_task(self._follow(task_store, dict(row)))
                self._followers.add(follower)
                follower.add_done_callback(self._followers.discard)

    async def stop(self) -> None:
        for follower in [*self._followers, *([self._pruner] if self._pruner else [])]:
            follower.cancel()

    # retention ------------------------------------------------------------------------

    def start_pruning(self, tasks_table: str, push_table: str | None, *, every_s: float, max_age_s: float,
                      max_tasks: int) -> None:  # fmt: skip
        """Prune now and every `every_s` seconds, until stop()."""

        async def loop() -> None:
            while True:
                try:
                    pruned = await self.prune(tasks_table, push_table, max_age_s=max_age_s, max_tasks=max_tasks)
                    if pruned:
                        log.info("pruned %d ended A2A task(s)", pruned)
                except Exception:  # a failed round must not end pruning; the next one tries again
                    log.exception("pruning A2A tasks failed")
                await asyncio.sleep(every_s)

        self._pruner = asyncio.create_task(loop(), name="forge-a2a-prune")

    async def prune(self, tasks_table: str, push_table: str | None, *, max_age_s: float, max_tasks: int) -> int:
        """Delete ended tasks (completed, failed, canceled, rejected) last updated more than
        `max_age_s` ago, and beyond `max_tasks` tasks in all the oldest ended ones, with their
        ledger rows and push configs. A task that is still open, or whose job still runs, is
        never deleted. Returns how many tasks went."""
        ended = ", ".join(f"'{TaskState.Name(s)}'" for s in TERMINAL_TASK_STATES)
        deletable = (
            f"json_extract(t.status, '$.state') IN ({ended}) AND NOT EXISTS ("
            "SELECT 1 FROM a2a_task_ledger l JOIN jobs j ON j.id = l.job_id "
            "WHERE l.task_id = t.id AND j.state IN ('QUEUED', 'RUNNING'))"
        )
        # last_updated is SQLAlchemy's naive-UTC text, which sorts and compares as time does.
        cutoff = (datetime.now(UTC) - timedelta(seconds=max_age_s)).strftime("%Y-%m-%d %H:%M:%S.%f")
        async with self._store.transaction() as tx:
            total = await tx.fetchone(f"SELECT COUNT(*) AS n FROM {tasks_table}")
            overflow = max(0, int(total["n"] if total else 0) - max_tasks)
            rows = await tx.fetchall(
                f"SELECT t.id FROM {tasks_table} t WHERE {deletable} AND (t.last_updated IS NULL OR t.last_updated < ?) "
                f"UNION SELECT id FROM (SELECT t.id FROM {tasks_table} t WHERE {deletable} "
                "ORDER BY t.last_updated IS NOT NULL, t.last_updated, t.id LIMIT ?)",
                (cutoff, overflow),
            )
            ids = [row["id"] for row in rows]
            for start in range(0, len(ids), PRUNE_BATCH):
                batch = ids[start : start + PRUNE_BATCH]
                marks = ", ".join("?" for _ in batch)
                await tx.execute(f"DELETE FROM {tasks_table} WHERE id IN ({marks})", batch)
                await tx.execute(f"DELETE FROM a2a_task_ledger WHERE task_id IN ({marks})", batch)
                if push_table is not None:
                    await tx.execute(f"DELETE FROM {push_table} WHERE task_id IN ({marks})", batch)
        return len(ids)

    async def _follow(self, task_store: TaskStore, row: dict[str, Any]) -> None:
        job = await self._engine.repo.get(row["job_id"])
        while not job.terminal:
            job = await self._engine.wait(job.id, WAIT_MAX_S)
        await self._settle(task_store, row, *job_outcome(job))

    async def _settle(
        self, task_store: TaskStore, row: dict[str, Any], state: TaskState, parts: list[Part], text: str
    ) -> None:
        context = ServerCallContext(user=TaskOwner(row["owner"]))
        task = await task_store.get(row["task_id"], context)
        if task is not None and task.status.state not in TERMINAL_TASK_STATES:
            stamp = Timestamp()
            stamp.GetCurrentTime()
            message = Message(
                role=Role.ROLE_AGENT,
                message_id=f"{row['task_id']}-settled",
                task_id=row["task_id"],
                context_id=row["context_id"],
                parts=[new_text_part(text)],
            )
            task.status.CopyFrom(TaskStatus(state=state, message=message, timestamp=stamp))
            if parts:
                task.artifacts.append(Artifact(artifact_id=f"{row['task_id']}-result", name=f"{row['tool']} result", parts=parts))
            await task_store.save(task, context)
            log.info("settled A2A task %s as %s after a restart", row["task_id"], TaskState.Name(state))
        await self.settled(row["task_id"])
