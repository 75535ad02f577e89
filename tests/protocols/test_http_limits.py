"""The pieces of the connection limits that need no server: the repeated-log filter and
the connection cap's arithmetic (tests/e2e/test_http_hardening.py floods a live server)."""

from __future__ import annotations

import io
import logging

from forge_mcp.protocols.http_limits import FD_RESERVE, MIN_CONNECTIONS, RepeatedRecordFilter, connection_cap


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def logger_with_filter(clock: Clock) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RepeatedRecordFilter(window_s=5.0, clock=clock))
    logger = logging.getLogger(f"test.repeats.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    return logger, stream


def test_a_flood_of_one_error_writes_the_first_then_a_count() -> None:
    clock = Clock()
    logger, stream = logger_with_filter(clock)
    for i in range(10_000):
        clock.now = i * 0.001  # 10,000 tracebacks in 10 s
        try:
            raise OSError(24, "Too many open files")
        except OSError:
            logger.error("socket.accept() out of system resource", exc_info=True)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "socket.accept() out of system resource"
    assert sum("Traceback" in line for line in lines) == 1
    summaries = [line for line in lines if "repeated" in line]
    assert len(summaries) == 1 and "(repeated 4999 times in the last 5s)" in summaries[0]
    assert len(stream.getvalue()) < 2_000


def test_different_messages_and_info_records_pass() -> None:
    clock = Clock()
    logger, stream = logger_with_filter(clock)
    logger.setLevel(logging.INFO)
    for _ in range(3):
        logger.warning("disk almost full")
        logger.warning("job %s lost its worker", "a")
        logger.info("started")
    lines = stream.getvalue().splitlines()
    assert lines.count("started") == 3
    assert lines.count("disk almost full") == 1 and lines.count("job a lost its worker") == 1
    clock.now = 6.0
    logger.warning("disk almost full")
    assert stream.getvalue().splitlines()[-1] == "disk almost full (repeated 2 times in the last 5s)"
    clock.now = 12.0
    logger.warning("disk almost full")
    assert stream.getvalue().splitlines()[-1] == "disk almost full"


def test_the_cap_stays_below_the_open_file_limit() -> None:
    assert connection_cap(1000, 1 << 20) == 1000
    assert connection_cap(1000, 1024) == 1024 - FD_RESERVE
    assert connection_cap(1000, 64) == MIN_CONNECTIONS
