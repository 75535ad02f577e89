"""Run start-up work that the first requests do not need in a thread of its own, at a lower
CPU priority, so that on a busy machine it yields the CPU to the event loop answering them."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
NICENESS = 5  # added to the thread's niceness; Linux only (elsewhere the thread runs at normal priority)


async def run_in_background_thread(name: str, fn: Callable[[], T]) -> T:
    """fn() in a new thread. A cancelled wait leaves fn running to its end (as
    asyncio.to_thread does); its result is then dropped. Not the default executor's thread:
    one made nicer could not be made normal again without privileges. Not a daemon: the
    interpreter waits for it at exit, because a daemon thread still importing and building
    (the A2A side, the tool schemas) while the interpreter finalizes aborts the process — a
    server stopped within a second of start-up exited -6 in about one stop in five."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        with contextlib.suppress(OSError, AttributeError):
            # On Linux a PRIO_PROCESS "who" that is a thread id sets that thread's niceness only.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
        try:
            result: T | None = fn()
            error: BaseException | None = None
        except BaseException as exc:  # handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=False).start()
    return await done
