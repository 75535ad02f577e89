"""Waiting for a job: until it is terminal or the time is up, reporting progress on the way.
Updates come from this process's bus, or from the database when another process
supervises the job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from forge_mcp.jobs import constants as C
from forge_mcp.jobs.events import JobEventBus
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.repository import JobRepository

ProgressCallback = Callable[[Job], Awaitable[None]]


class Waiter:
    def __init__(self, repository: JobRepository, bus: JobEventBus) -> None:
        self.repo = repository
        self.bus = bus

    async def wait(self, job_id: str, timeout_s: float, on_progress: ProgressCallback | None = None) -> Job:
        deadline = time.monotonic() + timeout_s
        with self.bus.subscribe(job_id) as updates:
            job = await self.repo.get(job_id)
            seen = _progress_key(job)
            while not job.terminal:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
                    # lands as the update arrives, and the waiter (job_wait) would not stop when cancelled.
                    async with asyncio.timeout(min(remaining, C.WAIT_POLL_S)):
                        await updates.get()
                except TimeoutError:
                    pass
                job = await self.repo.get(job_id)
                if on_progress is not None and _progress_key(job) != seen:
                    seen = _progress_key(job)
                    await on_progress(job)
            return job


def _progress_key(job: Job) -> tuple[Any, ...]:
    return (job.state, job.progress.done, job.progress.total, job.progress.message)
