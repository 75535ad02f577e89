"""Supervision, the engine loop's body: forward cancel requests, poll every supervised
worker through its executor, take in what each reported, settle the jobs whose worker is
gone (settlement.py), then admit and launch what fits (launching.py).

The polls run concurrently and outside the engine's lock. A tick waits for them a short
while (POLL_WAIT_S); a poll still in flight then is taken up by a later tick, so one slow
executor delays only its own jobs — never job_status, job_cancel, a submission, or the
other executors' jobs.

A worker's outcome is taken from its events once the executor reports it gone, so a job is
never SUCCEEDED while its worker still runs, and never RUNNING without one for longer
than a tick (or the heartbeat lease, for a hung worker)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.engine_state import EngineState, Supervision
from forge_mcp.jobs.events import TERMINAL_EVENTS, JobEventBus, JobUpdate
from forge_mcp.jobs.executors.base import Poll
from forge_mcp.jobs.launching import Launcher
from forge_mcp.jobs.limits import EngineLimits
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.settlement import Settlement

log = logging.getLogger("forge_mcp.jobs")


class Supervisor:
    def __init__(
        self,
        repository: JobRepository,
        bus: JobEventBus,
        limits: EngineLimits,
        launcher: Launcher,
        settlement: Settlement,
        state: EngineState,
    ) -> None:
        self.repo = repository
        self.bus = bus
        self.limits = limits
        self.launcher = launcher
        self.settlement = settlement
        self.state = state

    async def tick(self) -> None:
        if self.state.running:
            await self.request_stops(await self.repo.cancel_requested_ids())
        for job_id, sup, poll in await self._poll():
            try:
                await self._watch(job_id, sup, poll)
            except Exception:  # one job's executor failing must not hold up the others, or admission
                log.exception("job %s: supervising its worker failed; trying again at the next tick", job_id)
        await self.launcher.admit()

    async def request_stops(self, job_ids: set[str] | None = None) -> None:
        """SIGTERM now, SIGKILL once the grace period is over (the first tick after it)."""
        due = [sup for job_id, sup in self.state.running.items()
               if sup.kill_at is None and (job_ids is None or job_id in job_ids)]  # fmt: skip
        for sup in due:
            sup.kill_at = time.time() + self.limits.cancel_grace_s
        outcomes = await asyncio.gather(*(sup.executor.stop(sup.handle) for sup in due), return_exceptions=True)
        for sup, outcome in zip(due, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("job %s: asking its worker to stop failed: %s", sup.handle.job_id, outcome)

    def close(self) -> None:
        """Stop waiting for polls in flight (the engine is stopping; the next one polls again)."""
        for sup in self.state.running.values():
            if sup.polling is not None:
                sup.polling.cancel()
                sup.polling = None

    async def _poll(self) -> list[tuple[str, Supervision, Poll]]:
        """The polls that answered within POLL_WAIT_S; the others stay in flight."""
        for job_id, sup in self.state.running.items():
            if sup.polling is None:
                sup.polling = asyncio.create_task(sup.executor.poll(sup.handle), name=f"forge-poll-{job_id}")
        in_flight = {sup.polling for sup in self.state.running.values() if sup.polling is not None}
        if in_flight:
            await asyncio.wait(in_flight, timeout=C.POLL_WAIT_S)
        answered = []
        for job_id, sup in list(self.state.running.items()):
            task = sup.polling
            if task is None or not task.done():
                continue
            sup.polling = None
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                # As if the worker said nothing: its heartbeat lease decides when that is too long.
                log.error("job %s: polling its worker on executor %s failed: %s", job_id, sup.executor.name, error)
                sup.poll_error = str(error)
                answered.append((job_id, sup, Poll(alive=True)))
            else:
                sup.poll_error = None
                answered.append((job_id, sup, task.result()))
        return answered

    async def _watch(self, job_id: str, sup: Supervision, poll: Poll) -> None:
        await self.take_events(job_id, sup, poll.events)
        now = time.time()
        if not poll.alive:
            await self.settlement.finish(job_id, sup, lost_reason=exit_reason(poll.exit_code))
        elif now - sup.last_beat > self.limits.lease_s and sup.poll_error is not None:
            # Not a silent worker: its host could not be reached for a whole lease. It may still run
            # there; it is stopped if the host answers, and the job says so either way.
            log.warning("job %s: its host %s unreachable for %.0fs", job_id, sup.handle.host, now - sup.last_beat)
            try:
                async with asyncio.timeout(C.UNREACHABLE_KILL_WAIT_S):
                    await sup.executor.kill(sup.handle)
                stopped = "its worker there was stopped"
            except Exception:  # still out of reach (TimeoutError included)
                stopped = "its worker there could not be stopped and may still run"
            reason = f"{C.REASON_HOST_UNREACHABLE}: {sup.poll_error} for {now - sup.last_beat:.0f} s; {stopped}"
            await self.settlement.finish(job_id, sup, lost_reason=reason)
        elif now - sup.last_beat > self.limits.lease_s:
            log.warning("job %s: no heartbeat for %.0fs; killing its worker", job_id, now - sup.last_beat)
            await sup.executor.kill(sup.handle)
            await self.settlement.finish(job_id, sup, lost_reason=C.REASON_HEARTBEAT_LOST)
        elif sup.kill_at is not None and now > sup.kill_at:
            await sup.executor.kill(sup.handle)

    async def take_events(self, job_id: str, sup: Supervision, events: Sequence[dict[str, Any]]) -> None:
        """Take in what the worker reported: the heartbeat, progress and metrics go to the store
        (and the bus), the outcome waits for the worker to be gone."""
        progress: dict[str, Any] | None = None
        for event in events:
            kind = event["type"]
            if kind in ("heartbeat", "started"):
                sup.last_beat = max(sup.last_beat, float(event.get("at", time.time())))
            elif kind == "progress":
                progress = event
            elif kind == "metric":
                sup.metric_points.append((str(event["name"]), float(event["step"]), float(event["value"]), event["at"]))
            elif kind in TERMINAL_EVENTS:
                sup.outcome = event
        if progress is not None:
            await self.repo.update(
                job_id,
                progress_done=progress.get("done"),
                progress_total=progress.get("total"),
                progress_message=(progress.get("message") or None),
            )
            self.bus.publish(JobUpdate(await self.repo.get(job_id), "progress"))
        if sup.metric_points:
            await self.repo.add_metrics(job_id, sup.metric_points)
            sup.metric_points = []
            self.bus.publish(JobUpdate(await self.repo.get(job_id), "metrics"))
        if sup.last_beat - sup.heartbeat_written >= 5.0:
            await self.repo.update(job_id, heartbeat_at=sup.last_beat)
            sup.heartbeat_written = sup.last_beat


def exit_reason(code: int | None) -> str:
    """Why a worker that reported no outcome is gone, from its exit status when known."""
    if code is not None and code < 0:
        return f"{C.REASON_WORKER_LOST}: killed by signal {-code}"
    if code is not None:
        return f"{C.REASON_WORKER_LOST}: exited with code {code} without reporting an outcome"
    return C.REASON_WORKER_LOST
