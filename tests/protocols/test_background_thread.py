"""run_in_background_thread: its thread is joined at interpreter exit (not a daemon), so a
server stopped during its deferred start-up build exits cleanly instead of aborting (-6)."""

from __future__ import annotations

import threading

from forge_mcp.protocols.background_thread import run_in_background_thread


async def test_the_work_runs_in_a_thread_the_interpreter_waits_for_at_exit() -> None:
    def where() -> tuple[str, bool]:
        thread = threading.current_thread()
        return thread.name, thread.daemon

    assert await run_in_background_thread("forge-build", where) == ("forge-build", False)
