"""The workflow orchestration kind: a DAG of tool calls run as soon as each step's dependencies
have ended, independent branches at once (bounded by job admission, not here).

It reads top to bottom: load the steps' record (a restarted server finds the finished steps
there and never reruns them), then until no step can start and none runs: decide each step
whose dependencies have all ended (skip it when one of them did not succeed or its condition
is false), run the others as tasks, and settle each that ends. A step calls its tool through
the capability runner as the run's owner, with the scopes they had when they started it. A
tool that starts a job is called with the step's own idempotency key and the job is linked
as the step's child: its result is the job's final result (and its job_id), a restarted run
re-attaches to it, and cancelling the run cancels it.

Every change of a step is written to the record before it is announced."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, model_validator

from forge_mcp.errors import ForgeError
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.states import JobState
from forge_mcp.orchestration.context import Child, OrchestrationContext
from forge_mcp.orchestration.kinds import OrchestrationKind
from forge_mcp.security.principal import Principal
from forge_mcp.workflows import WORKFLOW_KIND
from forge_mcp.workflows.conditions import Condition, ConditionError
from forge_mcp.workflows.document import StepSpec, WorkflowDocument
from forge_mcp.workflows.graph import StepGraph
from forge_mcp.workflows.references import INPUTS, Unresolved, resolve
from forge_mcp.workflows.state import TERMINAL_STEP_STATES, WorkflowState, redacted, save_snapshot
from forge_mcp.workflows.validation import SET_BY_WORKFLOW, step_is_job

SURFACE = "workflow"  # how the runner counts a step's tool call (forge_tool_calls_total{surface})
RESULT_PREVIEW_CHARS = 300


class WorkflowArguments(BaseModel):
    document: WorkflowDocument
    inputs: dict[str, Any] = Field(description="Every input's value: given, or its default")
    source: str = Field(description="Where the document came from: a file's path, or 'inline'")
    scopes: list[str] = Field(description="The starting caller's scopes: every step runs with these")
    order: list[str] = Field(default_factory=list, description="The steps in the document's order (the store "
                             "keeps a job's arguments with sorted keys)")  # fmt: skip

    @model_validator(mode="after")
    def _in_document_order(self) -> WorkflowArguments:
        steps = self.document.steps
        if sorted(self.order) == sorted(steps) and list(steps) != self.order:
            self.document = self.document.model_copy(update={"steps": {name: steps[name] for name in self.order}})
        return self


class StepOutcome(BaseModel):
    name: str
    tool: str
    state: str = Field(description="pending, running, succeeded, failed, skipped or canceled")
    attempts: int
    job_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None
    skipped_because: str | None = None


class WorkflowResult(BaseModel):
    name: str
    outputs: dict[str, Any] = Field(description="The workflow's named outputs (null where a step did not run)")
    succeeded: int
    failed: int
    skipped: int
    failed_steps: list[str] = Field(description="Steps that failed with on_failure: continue (the run went on)")
    steps: list[StepOutcome]


class StepFailed(ForgeError):
    """A step with on_failure: stop failed; the run ends FAILED with this message."""

    code = "step_failed"


@dataclass
class WorkflowLoop:
    ctx: OrchestrationContext
    arguments: WorkflowArguments
    state: WorkflowState
    graph: StepGraph
    principal: Principal
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    saving: asyncio.Lock = field(default_factory=asyncio.Lock)  # steps run as concurrent tasks; one write at a time

    @property
    def document(self) -> WorkflowDocument:
        return self.arguments.document

    async def run(self) -> WorkflowResult:
        stop: str | None = None
        for name, record in self.state.steps.items():
            if record.state == "running":  # a previous server's: re-attached to its job, or called again
                self.running[name] = asyncio.create_task(self.run_step(name, self.document.steps[name]))
        if self.running:
            self.report(f"resumed after a restart: {', '.join(self.running)}")
        try:
            while True:
                while stop is None and (ready := self.ready()):  # a skipped step can make its dependents ready at once
                    for name in ready:
                        await self.decide(name)
                if not self.running:
                    break
                done, _ = await asyncio.wait(self.running.values(), return_when=asyncio.FIRST_COMPLETED)
                for name in [n for n, task in self.running.items() if task in done]:
                    self.running.pop(name).result()
                    record = self.state.steps[name]
                    if record.state == "failed" and self.document.steps[name].on_failure == "stop" and stop is None:
                        stop = f"step {name!r} ({self.document.steps[name].tool}) failed: {record.error}"
                        await self.cancel_running()
        finally:
            for task in self.running.values():
                task.cancel()
        if stop is not None:
            await self.mark_unstarted("canceled", "the run stopped: " + stop)
            raise StepFailed(stop)
        unsettled = [n for n, r in self.state.steps.items() if r.state not in TERMINAL_STEP_STATES]
        if unsettled:
            raise ForgeError(f"steps {', '.join(unsettled)} could not be settled; workflow_status shows them")
        return self.result()

    # deciding what runs -----------------------------------------------------------------------

    def ready(self) -> list[str]:
        """Pending steps whose dependencies have all ended, in the document's order."""
        return [name for name, record in self.state.steps.items()
                if record.state == "pending" and name not in self.running
                and all(self.state.steps[n].state in TERMINAL_STEP_STATES for n in self.graph.needs[name])]  # fmt: skip

    async def decide(self, name: str) -> None:
        step = self.document.steps[name]
        blocked = [n for n in sorted(self.graph.needs[name]) if self.state.steps[n].state != "succeeded"]
        if blocked:
            why = ", ".join(f"{n} {self.state.steps[n].state}" for n in blocked)
            await self.settle(name, "skipped", skipped_because=f"needs {why}")
            return
        if step.when is not None:
            try:
                go = Condition.parse(step.when).evaluate(self.scope())
            except (ConditionError, ForgeError) as exc:
                await self.settle(name, "failed", error=f"when: {exc}")
                return
            if not go:
                await self.settle(name, "skipped", skipped_because=f"when is false: {step.when}")
                return
        self.running[name] = asyncio.create_task(self.run_step(name, step), name=f"workflow step {name}")

    def scope(self) -> dict[str, Any]:
        values: dict[str, Any] = {INPUTS: self.arguments.inputs}
        values.update({n: r.result for n, r in self.state.steps.items() if r.state == "succeeded"})
        return values

    # running one step ------------------------------------------------------------------------

    async def run_step(self, name: str, step: StepSpec) -> None:
        record = self.state.steps[name]
        first = max(1, record.attempt)
        for attempt in range(first, step.retries + 2):
            try:
                arguments = resolve(step.arguments, self.scope())
            except Unresolved as exc:
                await self.settle(name, "failed", error=f"arguments: {exc}")
                return
            resumed = attempt == record.attempt and record.state == "running"
            if not resumed:
                await self.mark(name, state="running", attempt=attempt, started_at=record.started_at or time.time(),
                                arguments=redacted(arguments), job_id=None, error=None)  # fmt: skip
                self.report(f"step {name} started" + (f" (attempt {attempt})" if attempt > 1 else ""))
            try:
                async with asyncio.timeout(step.timeout_s):
                    result = await self.call(name, step, attempt, arguments)
            except TimeoutError:
                error = f"timed out after {step.timeout_s:g} s"
                await self.stop_job(name)
            except ForgeError as exc:
                error = f"{step.tool}: {exc.message}"
            else:
                await self.settle(name, "succeeded", result=result)
                return
            self.ctx.log(f"step {name}: attempt {attempt} failed: {error}")
            await self.mark(name, error=error)
        await self.settle(name, "failed", error=self.state.steps[name].error)

    async def call(self, name: str, step: StepSpec, attempt: int, arguments: dict[str, Any]) -> Any:
        """The step's result: the tool's, or for a tool that starts a job, the job's final result."""
        cap = self.ctx.tools.registry.get(step.tool)
        link = name if attempt == 1 else f"{name}#{attempt}"
        takes_key = "idempotency_key" in cap.arguments.model_fields
        if takes_key:
            arguments = {**arguments, **{key: await self.ctx.step_key(link) for key in SET_BY_WORKFLOW}}
        record = self.state.steps[name]
        child = await self.ctx.existing_child(link) if record.job_id is None and takes_key else None
        if record.job_id is not None:
            child = Child(link, record.job_id)
        if child is None:
            output = await self.ctx.tools.run(step.tool, arguments, self.principal, surface=SURFACE)
            data = output.model_dump(mode="json")
            if not (takes_key and isinstance(data.get("job_id"), str)):
                return data
            child = await self.ctx.link_child(link, data["job_id"])
            await self.mark(name, job_id=child.job_id)
            self.ctx.log(f"step {name}: {step.tool} started job {child.job_id}")
            if not step_is_job(cap):
                return data  # a tool that returned once its job was ready (serve_start): the job keeps running
        else:
            await self.mark(name, job_id=child.job_id)
            self.ctx.log(f"step {name}: re-attached to job {child.job_id}")
            if not step_is_job(cap):
                # Called again with its key, the tool finds the same job and answers as the first call did.
                output = await self.ctx.tools.run(step.tool, arguments, self.principal, surface=SURFACE)
                return output.model_dump(mode="json")
        return await self.job_result(name, child)

    async def job_result(self, name: str, child: Child) -> dict[str, Any]:
        while True:
            job = await self.ctx.child_job(child)
            if job.state is JobState.SUCCEEDED:
                return {**(job.result or {}), "job_id": job.id}
            if job.terminal:
                detail = job.error or job.reason or "no detail"
                raise ForgeError(f"job {job.id} ({job.kind}) ended {job.state.value}: {detail}")
            await self.ctx.wait_any([child], C.WAIT_POLL_S)

    async def stop_job(self, name: str) -> None:
        job_id = self.state.steps[name].job_id
        if job_id is not None:
            await self.ctx.cancel_child(Child(name, job_id))

    async def cancel_running(self) -> None:
        for name, task in list(self.running.items()):
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await self.stop_job(name)
            await self.settle(name, "canceled", error="canceled: another step failed and the run stopped")
        self.running.clear()

    async def mark_unstarted(self, state: str, why: str) -> None:
        for name, record in self.state.steps.items():
            if record.state == "pending":
                await self.settle(name, state, skipped_because=why)

    # recording ---------------------------------------------------------------------------------

    async def mark(self, name: str, **changes: Any) -> None:
        record = self.state.steps[name]
        self.state.steps[name] = record.model_copy(update=changes)
        async with self.saving:
            await asyncio.to_thread(save_snapshot, self.ctx.run.workflow_state, self.state.snapshot())

    async def settle(self, name: str, state: str, **changes: Any) -> None:
        await self.mark(name, state=state, finished_at=time.time(), **changes)
        record = self.state.steps[name]
        detail = record.error or record.skipped_because or ""
        self.ctx.log(f"step {name}: {state}" + (f": {detail}" if detail else ""))
        self.report(f"step {name} {state}")

    def report(self, message: str) -> None:
        done = sum(1 for r in self.state.steps.values() if r.state in TERMINAL_STEP_STATES)
        running = ", ".join(n for n, r in self.state.steps.items() if r.state == "running") or "none"
        self.ctx.progress(done, len(self.state.steps), f"{done}/{len(self.state.steps)} steps ended; {message}; running: {running}")

    def result(self) -> WorkflowResult:
        scope = self.scope()
        outputs = {}
        for output, value in self.document.outputs.items():
            try:
                outputs[output] = resolve(value, scope)
            except Unresolved:
                outputs[output] = None
        states = [r.state for r in self.state.steps.values()]
        return WorkflowResult(
            name=self.document.name,
            outputs=outputs,
            succeeded=states.count("succeeded"),
            failed=states.count("failed"),
            skipped=states.count("skipped"),
            failed_steps=[n for n, r in self.state.steps.items() if r.state == "failed"],
            steps=outcomes(self.document, self.state),
        )


def outcomes(document: WorkflowDocument, state: WorkflowState) -> list[StepOutcome]:
    return [StepOutcome(name=name, tool=document.steps[name].tool, state=record.state, attempts=record.attempt,
                        job_id=record.job_id, started_at=record.started_at, finished_at=record.finished_at,
                        error=record.error, skipped_because=record.skipped_because)  # fmt: skip
            for name, record in state.steps.items()]


def preview(value: Any) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, default=str)
    return text if len(text) <= RESULT_PREVIEW_CHARS else text[: RESULT_PREVIEW_CHARS - 1] + "…"


async def run_workflow(ctx: OrchestrationContext, arguments: WorkflowArguments) -> WorkflowResult:
    state = await asyncio.to_thread(WorkflowState.load, ctx.run.workflow_state, list(arguments.document.steps))
    principal = Principal(name=ctx.principal, scopes=frozenset(arguments.scopes))
    loop = WorkflowLoop(ctx, arguments, state, StepGraph.of(arguments.document), principal)
    return await loop.run()


WORKFLOW = OrchestrationKind(WORKFLOW_KIND, WorkflowArguments, WorkflowResult, run_workflow)
