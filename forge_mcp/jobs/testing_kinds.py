"""Job kinds for the engine's own tests: each one exercises one path of the engine with
nothing else in the way (no CPU burnt, no model, no optional dependency).

- test_sleep: sleeps, reporting progress; the timer of most engine tests.
- test_fail: fails with the caller's message (a ForgeError, or an unexpected exception).
- test_events: emits progress, metrics and log lines, then succeeds.
- test_hang: stops heartbeating (the worker freezes itself) and/or ignores SIGTERM, so the
  lease and the kill after the grace period are what end it.
- test_spawn: starts a grandchild that outlives the worker unless the engine kills it.

Listed in the catalog only when FORGE_TEST_JOB_KINDS is on (forge_mcp.jobs.catalog).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.errors import ForgeError
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources

TICK_S = 0.05  # how often a sleeping job looks at its cancel flag


class SleepArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=3600)
    steps: int = Field(10, ge=1, le=10_000, description="progress events over the sleep")
    gpus: int = Field(0, ge=0, le=64, description="GPU slots it claims (it uses none): for admission tests")
    memory_gb: float = Field(0.0, ge=0)


class SleepResult(BaseModel):
    slept_s: float
    attempt: int


class FailArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field("failed on purpose", max_length=2000)
    unexpected: bool = Field(False, description="raise a plain exception (the worker_error path), not a ForgeError")
    after_s: float = Field(0.0, ge=0, le=600)


class FailResult(BaseModel):
    pass  # never produced


class EventsArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    progress: int = Field(3, ge=0, le=10_000)
    metrics: int = Field(3, ge=0, le=10_000)
    log_lines: int = Field(3, ge=0, le=10_000)
    interval_s: float = Field(0.0, ge=0, le=10)


class EventsResult(BaseModel):
    progress: int
    metrics: int
    log_lines: int


class HangArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stop_heartbeat: bool = Field(True, description="freeze the whole worker (SIGSTOP): no heartbeat, no SIGTERM handling")
    ignore_sigterm: bool = Field(True, description="SIGTERM does nothing: only SIGKILL ends it")
    seconds: float = Field(3600, ge=0, le=86_400, description="how long it hangs while still heartbeating")


class HangResult(BaseModel):
    hung_s: float


class SpawnArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    child_seconds: float = Field(600, ge=0, le=86_400, description="how long the grandchild lives unless killed")
    new_session: bool = Field(True, description="the grandchild leaves the worker's process group")
    wait_s: float = Field(0.0, ge=0, le=3600, description="how long the worker runs after spawning it")


class SpawnResult(BaseModel):
    grandchild_pid: int


def sleep_resources(arguments: SleepArguments) -> Resources:
    return Resources(gpus=arguments.gpus, memory_gb=arguments.memory_gb)


def _sleep(job: JobContext, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(TICK_S, left))
        job.check_canceled()


def sleep(job: JobContext, arguments: SleepArguments) -> SleepResult:
    started = time.monotonic()
    for step in range(arguments.steps):
        _sleep(job, arguments.seconds / arguments.steps)
        job.progress(step + 1, arguments.steps, f"slept {step + 1}/{arguments.steps}")
    return SleepResult(slept_s=round(time.monotonic() - started, 3), attempt=job.attempt)


def fail(job: JobContext, arguments: FailArguments) -> FailResult:
    _sleep(job, arguments.after_s)
    if arguments.unexpected:
        raise RuntimeError(arguments.message)
    raise ForgeError(arguments.message)


def emit_events(job: JobContext, arguments: EventsArguments) -> EventsResult:
    for i in range(max(arguments.progress, arguments.metrics, arguments.log_lines)):
        if i < arguments.progress:
            job.progress(i + 1, arguments.progress, f"step {i + 1}")
        if i < arguments.metrics:
            job.metric("loss", i + 1, 1.0 / (i + 1))
        if i < arguments.log_lines:
            job.log(f"log line {i + 1}")
        _sleep(job, arguments.interval_s)
    return EventsResult(progress=arguments.progress, metrics=arguments.metrics, log_lines=arguments.log_lines)


def hang(job: JobContext, arguments: HangArguments) -> HangResult:
    started = time.monotonic()
    if arguments.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    job.progress(0, None, "hanging")
    if arguments.stop_heartbeat:
        os.kill(os.getpid(), signal.SIGSTOP)  # every thread stops, the heartbeat's too, until SIGCONT or SIGKILL
    deadline = started + arguments.seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
    return HangResult(hung_s=round(time.monotonic() - started, 3))


def spawn(job: JobContext, arguments: SpawnArguments) -> SpawnResult:
    child = subprocess.Popen(  # inherits FORGE_JOB_ID: how the engine finds it once it left the group
        [sys.executable, "-c", f"import time; time.sleep({arguments.child_seconds!r})"],
        start_new_session=arguments.new_session,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    job.log(f"grandchild pid {child.pid}")
    job.progress(0, None, f"grandchild {child.pid}")
    _sleep(job, arguments.wait_s)
    return SpawnResult(grandchild_pid=child.pid)


# Warm, like the training kinds: with warm workers on (FORGE_WARM_WORKERS), the engine's tests run them warm.
SLEEP = JobKind("test_sleep", SleepArguments, SleepResult, sleep, sleep_resources, warm=True)
FAIL = JobKind("test_fail", FailArguments, FailResult, fail, warm=True)
EVENTS = JobKind("test_events", EventsArguments, EventsResult, emit_events, warm=True)
HANG = JobKind("test_hang", HangArguments, HangResult, hang, warm=True)
SPAWN = JobKind("test_spawn", SpawnArguments, SpawnResult, spawn, warm=True)
