"""JobEngine.wait stops when cancelled, even when the cancel lands as an update arrives
(Python 3.11's asyncio.wait_for swallowed that cancel and the waiter went on waiting)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from forge_mcp.app import ForgeApp
from forge_mcp.jobs.events import JobUpdate
from forge_mcp.settings import load_settings
from tests.jobs.conftest import LONG, SLEEP
from tests.polling import until


async def test_a_cancel_that_lands_with_an_update_stops_the_wait(tmp_path: Path) -> None:
    app = ForgeApp(load_settings(home=tmp_path / "ws"))
    async with app.running(engine=False):  # the job stays queued: nothing else publishes
        handle = await app.jobs.submit(SLEEP, LONG, "tester")
        update = JobUpdate(await app.jobs.repo.get(handle.job_id), "state")
        waiting = asyncio.create_task(app.jobs.wait(handle.job_id, 3600))

        async def blocked_on_updates() -> bool:
            queues = [queue for _, queue in app.job_bus._subscribers.values()]
            return len(queues) == 1 and bool(queues[0]._getters)  # type: ignore[attr-defined]

        await until(blocked_on_updates, what="the waiter to wait for updates")
        # No await from here to the cancel: the update completes the waiter's get, then the cancel lands.
        app.job_bus.publish(update)
        waiting.cancel()
        done, _ = await asyncio.wait({waiting}, timeout=30)
        assert waiting in done and waiting.cancelled()
