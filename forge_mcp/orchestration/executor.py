"""The server executor ("server"): runs each orchestration as a coroutine in the server's own
event loop, behind the same executor interface as a worker process (jobs/executors/base.py).
It names no host, so it holds no admission slot and its jobs start as soon as they are
queued; the engine supervises an orchestration like any job: its events (progress, outcome)
come back through `poll`, its state transitions and result check are the engine's.

An orchestration outlives the server process that ran it: its row stays RUNNING, and the
first poll of it by a restarted server (recovery's) starts its coroutine again, which finds
the children its steps already started (context.py). Stopping it (job_cancel) cancels the
coroutine, and with it every unfinished child, before it reports CANCELED; a server that
shuts down stops the coroutine without touching its children.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from forge_mcp.errors import ForgeError
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.events import JobEventBus
from forge_mcp.jobs.executors.base import LogChunk, Poll, WorkerHandle, read_log
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import WorkerWorkspace
from forge_mcp.jobs.states import JobState
from forge_mcp.orchestration.context import REASON_CHILD_FAILED, ChildFailed, JobControl, OrchestrationContext
from forge_mcp.orchestration.kinds import SERVER_EXECUTOR, OrchestrationKind
from forge_mcp.orchestration.links import ChildLinks

if TYPE_CHECKING:
    from forge_mcp.capabilities import CapabilityRunner
    from forge_mcp.services import Services

log = logging.getLogger("forge_mcp.orchestration")

SERVER_HOST = "server"  # the host recorded on an orchestration: not a host of any slot-holding executor
REASON_ORCHESTRATION_ERROR = "orchestration_error"


@dataclass
class ServerRun:
    """One orchestration coroutine this process runs, and the events it reported since the last poll."""

    task: asyncio.Task[None] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    stop_requested: bool = False

    def report(self, type: str, payload: Mapping[str, Any] | None = None) -> None:
        self.events.append({"type": type, "at": time.time(), **(payload or {})})

    def take(self) -> list[dict[str, Any]]:
        taken, self.events = self.events, []
        return taken


class ServerExecutor:
    name = SERVER_EXECUTOR

    def __init__(
        self,
        kinds: Mapping[str, OrchestrationKind[Any, Any]],
        repository: JobRepository,
        links: ChildLinks,
        bus: JobEventBus,
        control: Callable[[], JobControl],
        worker_workspace: WorkerWorkspace,
        services: Callable[[], Services | None] = lambda: None,
        tools: Callable[[], CapabilityRunner | None] = lambda: None,
    ) -> None:
        """`control` gives the job engine, which starts and cancels the children, `services` the
        domain services the steps are prepared with and `tools` the capability runner a workflow's
        steps are called through; providers, because all are built after this executor (the
        engine with it among its executors)."""
        self.kinds = dict(kinds)
        self.worker_workspace = worker_workspace  # written into job.json like any job's; nothing reads it here
        self._repo = repository
        self._links = links
        self._bus = bus
        self._control = control
        self._services = services
        self._tools = tools
        # The lease recorded on an orchestration's row: this server process (its pid and start time).
        self._pid = os.getpid()
        self._started_at = psutil.Process(self._pid).create_time()
        self._runs: dict[str, ServerRun] = {}
        self._ended: set[str] = set()  # orchestrations whose coroutine ended here: never re-attached by a poll

    def hosts(self) -> Mapping[str, Capacity]:
        return {}  # no slots: an orchestration waits on its children without holding one

    async def launch(self, job_id: str, run: RunDir, host: str) -> WorkerHandle:
        job = await self._repo.get(job_id)
        if job.kind not in self.kinds:
            raise OSError(f"{job.kind} is not an orchestration kind this server runs")
        self._start(job, run)
        return self._handle(job_id, run)

    async def poll(self, handle: WorkerHandle) -> Poll:
        current = self._runs.get(handle.job_id)
        if current is None and handle.job_id not in self._ended:
            current = await self._reattach(handle)
        if current is None:
            return Poll(alive=False)
        assert current.task is not None
        alive = not current.task.done()
        events = current.take()
        if alive:
            events.append({"type": "heartbeat", "at": time.time()})  # the coroutine is the lease
        else:
            self._runs.pop(handle.job_id, None)
            self._ended.add(handle.job_id)
        return Poll(alive=alive, exit_code=None if alive else 0, events=tuple(events))

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        return await asyncio.to_thread(read_log, handle.run.log, since, max_bytes)

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        """Nothing to bring: the orchestration ran here."""

    async def stop(self, handle: WorkerHandle) -> None:
        """job_cancel: the coroutine is cancelled, cancels its unfinished children, then reports CANCELED."""
        current = self._runs.get(handle.job_id)
        if current is not None and current.task is not None and not current.task.done():
            current.stop_requested = True
            current.task.cancel()

    async def kill(self, handle: WorkerHandle) -> None:
        """After the grace period: stop waiting for the children's cancellation (it carries on
        by itself) and end the coroutine now."""
        await self.stop(handle)

    async def close(self) -> None:
        """The server stops: end every coroutine without touching its orchestration or its
        children; the next server to supervise the workspace re-attaches them."""
        tasks = [run.task for run in self._runs.values() if run.task is not None and not run.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runs.clear()

    # running one orchestration ------------------------------------------------------------

    def _handle(self, job_id: str, run: RunDir) -> WorkerHandle:
        # The server's own process: an orchestration has no worker of its own.
        return WorkerHandle(job_id=job_id, run=run, host=SERVER_HOST, pid=self._pid, started_at=self._started_at)

    async def _reattach(self, handle: WorkerHandle) -> ServerRun | None:
        """A restarted server's first poll of an orchestration the old one ran: carry on here."""
        job = await self._repo.get(handle.job_id)
        if job.state is not JobState.RUNNING or job.kind not in self.kinds:
            return None
        log.info("orchestration %s: re-attaching after a server restart", job.id)
        await self._repo.update(job.id, pid=self._pid, pid_started_at=self._started_at, host=SERVER_HOST)
        return self._start(job, handle.run, reattached=True)

    def _start(self, job: Job, run: RunDir, *, reattached: bool = False) -> ServerRun:
        current = ServerRun()
        kind = self.kinds[job.kind]

        def write_log(line: str) -> None:
            with run.log.open("a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

        ctx = OrchestrationContext(job, self._control(), self._repo, self._links, self._bus, current.report, write_log,
                                   run, self._services(), self._tools())  # fmt: skip
        write_log(f"orchestration {job.kind} {'re-attached after a server restart' if reattached else 'started'}")
        current.report("started", {"pid": self._pid, "attempt": job.attempt})
        current.task = asyncio.create_task(self._run(kind, ctx, current), name=f"orchestration {job.id}")
        self._runs[job.id] = current
        return current

    async def _run(self, kind: OrchestrationKind[Any, Any], ctx: OrchestrationContext, current: ServerRun) -> None:
        try:
            await self._run_to_outcome(kind, ctx, current)
        finally:
            # Its outcome is settled at the engine's next tick: now, not up to a period later.
            self._control().wake()

    async def _run_to_outcome(self, kind: OrchestrationKind[Any, Any], ctx: OrchestrationContext, current: ServerRun) -> None:
        try:
            result = await kind.run(ctx, kind.parse_arguments(ctx.job.arguments))
            current.report("result", {"result": kind.parse_result(result.model_dump(mode="json")).model_dump(mode="json")})
            ctx.log("orchestration succeeded")
        except asyncio.CancelledError:
            if not current.stop_requested:
                raise  # the server is stopping: the orchestration stays RUNNING for the next one
            ctx.log("canceled: canceling its unfinished steps")
            # Shielded: a kill after the grace period ends this coroutine, not the children's cancellation.
            await asyncio.shield(ctx.cancel_children())
            current.report("canceled")
        except ChildFailed as exc:
            await self._failed(ctx, current, REASON_CHILD_FAILED, exc.message)
        except ForgeError as exc:
            await self._failed(ctx, current, exc.code, exc.message)
        except Exception:
            ref = secrets.token_hex(4)
            log.exception("orchestration %s failed (ref %s)", ctx.job_id, ref)
            await self._failed(ctx, current, REASON_ORCHESTRATION_ERROR,
                               f"the orchestration failed unexpectedly (ref {ref}); the server log has the detail")  # fmt: skip

    @staticmethod
    async def _failed(ctx: OrchestrationContext, current: ServerRun, reason: str, message: str) -> None:
        ctx.log(f"failed: {message}")
        await ctx.cancel_children()  # the steps still running are not wanted any more
        current.report("error", {"reason": reason, "message": message})
