"""The API an orchestration's code sees: start a job as a named step, wait for steps, report
progress and log. Children run as the orchestration's owner, never with more rights.

Durability comes from the step names. `start_child` writes the step's link (job_links, with
the child's idempotency key) before it submits the child, and the engine writes the child's
row before it announces it; run again after a restart, the same call finds that child
instead of starting another, so each step's job is started exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from forge_mcp.errors import Conflict, ForgeError, InvalidArguments
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.events import JobEventBus
from forge_mcp.jobs.models import Job, JobHandle
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.states import JobState
from forge_mcp.orchestration.links import ChildLink, ChildLinks

if TYPE_CHECKING:
    from forge_mcp.capabilities import CapabilityRunner
    from forge_mcp.services import Services

STEP_MAX_CHARS = 100
REASON_CHILD_FAILED = "child_failed"  # an orchestration's reason when one of its steps did not succeed


class JobControl(Protocol):
    """What an orchestration asks of the job engine (JobEngine is one)."""

    async def submit(
        self, kind: str, arguments: dict[str, Any], principal: str, *, priority: int = 0,
        idempotency_key: str | None = None, host: str | None = None,
    ) -> JobHandle: ...

    async def cancel(self, job_id: str) -> Job: ...

    def wake(self) -> None: ...


class ChildFailed(ForgeError):
    """A step's job ended FAILED or CANCELED. Uncaught, it fails the orchestration with this message."""

    code = REASON_CHILD_FAILED

    def __init__(self, step: str, job: Job) -> None:
        detail = f": {job.error}" if job.error else f" ({job.reason})" if job.reason else ""
        super().__init__(f"step {step!r} (job {job.id}, {job.kind}) ended {job.state.value}{detail}")
        self.step = step
        self.job = job


class ChildNotStarted(ForgeError):
    """A step's job was refused at submission (its arguments, its resources, the owner's queue)."""

    code = "child_not_started"

    def __init__(self, step: str, kind: str, reason: ForgeError) -> None:
        super().__init__(f"step {step!r} could not start its {kind} job: {reason.message}")
        self.step = step


@dataclass(frozen=True)
class Child:
    step: str
    job_id: str


class OrchestrationContext:
    def __init__(
        self,
        job: Job,
        control: JobControl,
        repository: JobRepository,
        links: ChildLinks,
        bus: JobEventBus,
        report: Callable[[str, Mapping[str, Any]], None],
        log: Callable[[str], None],
        run: RunDir,
        services: Services | None = None,
        tools: CapabilityRunner | None = None,
    ) -> None:
        """`report(type, payload)` sends an event to the engine as a worker would (progress);
        `log` appends a line to the orchestration's log (job_logs); `run` is the orchestration's
        own run folder (for its state files, say a sweep's study); `services` are the domain
        services its steps are prepared with (a sweep plans each trial with the training service);
        `tools` runs capabilities as a protocol adapter does (a workflow's steps are tool calls)."""
        self.job = job
        self.run = run
        self._services = services
        self._tools = tools
        self._control = control
        self._repo = repository
        self._links = links
        self._bus = bus
        self._report = report
        self.log = log

    @property
    def job_id(self) -> str:
        return self.job.id

    @property
    def services(self) -> Services:
        if self._services is None:
            raise RuntimeError("this orchestration was started without the domain services")
        return self._services

    @property
    def tools(self) -> CapabilityRunner:
        if self._tools is None:
            raise RuntimeError("this orchestration was started without the capability runner")
        return self._tools

    @property
    def principal(self) -> str:
        """Whose the orchestration is: its children are theirs too."""
        return self.job.principal

    def progress(self, done: float, total: float | None = None, message: str | None = None) -> None:
        self._report("progress", {"done": done, "total": total, "message": message})

    async def start_child(self, kind: str, arguments: dict[str, Any], *, step: str, compute: str | None = None) -> Child:
        """Queue a job of `kind` as the step named `step` (unique in this orchestration), on the
        compute target `compute` names (default this machine), or find the one this step already started."""
        if not step or len(step) > STEP_MAX_CHARS:
            raise InvalidArguments(f"a step needs a name of 1 to {STEP_MAX_CHARS} characters")
        link = await self._link(step)
        child_id = link.child_id
        if child_id is None:
            # Submitted with the link's key: after a crash between the link and this call the
            # same key returns the child already queued, if there is one, instead of a second.
            try:
                handle = await self._control.submit(kind, arguments, self.job.principal, priority=self.job.priority,
                                                    idempotency_key=link.idempotency_key, host=compute)  # fmt: skip
            except ForgeError as exc:
                raise ChildNotStarted(step, kind, exc) from None
            child_id = handle.job_id
            await self._links.set_child(self.job.id, step, child_id)
            self.log(f"step {step}: {'found' if handle.deduplicated else 'started'} {kind} job {child_id}")
        else:
            self.log(f"step {step}: re-attached to job {child_id}")
        child = await self._repo.get(child_id)
        if child.kind != kind:
            raise Conflict(f"step {step!r} already ran a {child.kind} job ({child_id}), not {kind}")
        return Child(step=step, job_id=child_id)

    async def step_key(self, step: str) -> str:
        """The idempotency key of the job `step` starts through a tool call (not start_child), written
        before the call: the tool is called with it, so a call repeated after a restart finds the job
        the first one queued. link_child records the job once the call returns."""
        return (await self._link(step)).idempotency_key

    async def _link(self, step: str) -> ChildLink:
        """The step's link, written (with its child's idempotency key) the first time it is asked for."""
        link = await self._links.get(self.job.id, step)
        if link is None:
            link = await self._links.add(self.job.id, step, f"orchestration/{self.job.id}/{step}")
        return link

    async def link_child(self, step: str, job_id: str) -> Child:
        await self._links.set_child(self.job.id, step, job_id)
        return Child(step=step, job_id=job_id)

    async def existing_child(self, step: str) -> Child | None:
        """The child a step already started (after a restart, say), or None; found by its
        idempotency key when a crash came between its submission and its link's update."""
        for link in await self._links.children(self.job.id):
            if link.step == step and link.child_id is not None:
                return Child(step=step, job_id=link.child_id)
        return None

    async def child_job(self, child: Child) -> Job:
        return await self._repo.get(child.job_id)

    async def child_metric(self, child: Child, name: str, after_step: float) -> list[tuple[float, float]]:
        """(step, value) of `name` the child logged after `after_step`, oldest first."""
        series = await self._repo.metrics(child.job_id, [name], max_points=1_000_000)
        return [(p.step, p.value) for s in series for p in s.points if p.step > after_step]

    async def cancel_child(self, child: Child) -> None:
        await self._control.cancel(child.job_id)

    async def wait_any(self, children: list[Child], timeout_s: float) -> None:
        """Until something is published about one of `children` (a state, progress or metrics),
        or `timeout_s` passed: the caller re-reads what it needs. Holds no slot."""
        ids = {child.job_id for child in children}
        with self._bus.subscribe() as updates:
            try:
                async with asyncio.timeout(timeout_s):
                    while (await updates.get()).job.id not in ids:
                        pass
            except TimeoutError:
                pass

    async def wait(self, *children: Child) -> list[Job]:
        """Until every child has SUCCEEDED (their jobs, in the same order). Raises ChildFailed
        as soon as one ends FAILED or CANCELED. Holds no slot: it listens on the engine's bus
        and reads the store."""
        ids = {child.job_id for child in children}
        with self._bus.subscribe() as updates:
            while True:
                jobs = [await self._repo.get(child.job_id) for child in children]
                for child, job in zip(children, jobs, strict=True):
                    if job.state in (JobState.FAILED, JobState.CANCELED):
                        raise ChildFailed(child.step, job)
                if all(job.state is JobState.SUCCEEDED for job in jobs):
                    return jobs
                try:
                    # Any update about one of ours, or a re-read every poll period (a child's
                    # state may be written by another process).
                    async with asyncio.timeout(C.WAIT_POLL_S):
                        while (await updates.get()).job.id not in ids:
                            pass
                except TimeoutError:
                    pass

    async def unfinished_children(self) -> list[str]:
        """Every child started so far that has not ended, a child whose link lacks its id included."""
        out = []
        for link in await self._links.children(self.job.id):
            if link.child_id is not None and not (await self._repo.get(link.child_id)).terminal:
                out.append(link.child_id)
        return out

    async def cancel_children(self) -> None:
        """Cancel every unfinished child at once (each one's own children with it), until all have ended."""
        unfinished = await self.unfinished_children()
        if unfinished:
            self.log(f"canceling {len(unfinished)} unfinished step(s): {', '.join(unfinished)}")
            await asyncio.gather(*(self._control.cancel(job_id) for job_id in unfinished), return_exceptions=True)
