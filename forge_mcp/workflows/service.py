"""Workflows for a caller: validate a document (every problem at once, the plan, a Mermaid
drawing), run it as an orchestration of theirs, show a run's steps (with a PNG of its DAG
coloured by state) and list their runs.

A document comes from configs/workflows/ (by name), from a file in the workspace or an
import root (a path), or inline (a JSON object, or YAML or JSON text)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.capabilities import CapabilityRegistry, ImageAttachment
from forge_mcp.errors import InvalidArguments, NotFound
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job, JobHandle, Progress
from forge_mcp.package_data import config_file
from forge_mcp.security.principal import Principal
from forge_mcp.workflows import WORKFLOW_KIND
from forge_mcp.workflows.document import WorkflowDocument, parse_document
from forge_mcp.workflows.graph import StepGraph
from forge_mcp.workflows.jobs import WorkflowArguments, WorkflowResult, preview
from forge_mcp.workflows.state import TERMINAL_STEP_STATES, WorkflowState, redacted
from forge_mcp.workflows.validation import Problem, ResultSchemas, validate
from forge_mcp.workspace import Workspace

DOCUMENT_SUFFIXES = (".yaml", ".yml", ".json")
MAX_PROBLEMS_IN_ERROR = 20


class WorkflowCheck(BaseModel):
    name: str | None
    valid: bool
    problems: list[Problem] = Field(description="Every problem, each naming its step and field")
    levels: list[list[str]] = Field(description="The execution plan: each level's steps can run at once")
    mermaid: str | None = Field(description="The DAG as a Mermaid flowchart")
    inputs: dict[str, Any] = Field(description="The inputs a run would get (given, else defaults)")


class StepView(BaseModel):
    name: str
    tool: str
    state: str = Field(description="pending, running, succeeded, failed, skipped or canceled")
    needs: list[str]
    attempts: int
    job_id: str | None
    started_at: float | None
    finished_at: float | None
    seconds: float | None
    arguments: dict[str, Any] | None = Field(description="As resolved when it ran, secrets shown as ***")
    result: str | None = Field(description="The step's result, as JSON, shortened, secrets shown as ***")
    error: str | None
    skipped_because: str | None


class WorkflowStatus(BaseModel):
    run_id: str
    name: str
    state: str
    source: str
    progress: Progress
    steps: list[StepView]
    outputs: dict[str, Any] | None = Field(description="Once the run succeeded")
    failed_steps: list[str]
    error: str | None
    mermaid: str = Field(description="The DAG, each step coloured by state")
    chart: ImageAttachment | None = Field(None, description="The DAG as a PNG, coloured by state")


class WorkflowListItem(BaseModel):
    run_id: str
    name: str
    state: str
    source: str
    progress: str | None
    created_at: float


class WorkflowList(BaseModel):
    runs: list[WorkflowListItem]
    examples: list[str] = Field(description="Workflows in configs/workflows/, by name")


class WorkflowService:
    def __init__(self, workspace: Workspace, registry: CapabilityRegistry, engine: JobEngine,
                 job_results: Mapping[str, type[BaseModel]]) -> None:  # fmt: skip
        """`job_results`: each job kind's stored result model, what a step that starts a job returns."""
        self._workspace = workspace
        self._registry = registry
        self._engine = engine
        self._job_results = dict(job_results)

    async def check(self, principal: Principal, workflow: str | None, document: Any, inputs: dict[str, Any] | None
                    ) -> WorkflowCheck:  # fmt: skip
        parsed, _ = self._load(workflow, document)
        checked = validate(parsed, self._registry, principal, self._schemas(), inputs or {})
        return WorkflowCheck(name=parsed.name, valid=not checked.problems, problems=checked.problems,
                             levels=checked.levels, mermaid=checked.mermaid, inputs=_inputs(parsed, inputs or {}))  # fmt: skip

    async def run(self, principal: Principal, workflow: str | None, document: Any, inputs: dict[str, Any] | None, *,
                  idempotency_key: str | None = None) -> JobHandle:  # fmt: skip
        parsed, source = self._load(workflow, document)
        checked = validate(parsed, self._registry, principal, self._schemas(), inputs or {})
        if checked.problems:
            shown = "; ".join(_problem_text(p) for p in checked.problems[:MAX_PROBLEMS_IN_ERROR])
            more = len(checked.problems) - MAX_PROBLEMS_IN_ERROR
            raise InvalidArguments(f"workflow {parsed.name}: {len(checked.problems)} problem(s), nothing was started: "
                                   f"{shown}" + (f"; and {more} more (workflow_validate lists them all)" if more > 0 else ""))  # fmt: skip
        arguments = WorkflowArguments(document=parsed, inputs=_inputs(parsed, inputs or {}), source=source,
                                      scopes=sorted(principal.scopes), order=list(parsed.steps))  # fmt: skip
        return await self._engine.submit(WORKFLOW_KIND, arguments.model_dump(mode="json"), principal.name,
                                         idempotency_key=idempotency_key)  # fmt: skip

    async def status(self, principal: Principal, run_id: str, *, chart: bool = True) -> WorkflowStatus:
        job = await self._engine.get(run_id, principal)
        if job.kind != WORKFLOW_KIND:
            raise InvalidArguments(f"run_id: {run_id} is a {job.kind} job; give the job_id workflow_run returned")
        arguments = WorkflowArguments.model_validate(job.arguments)
        document = arguments.document
        run = self._workspace.run(job.id)
        state = await asyncio.to_thread(WorkflowState.load, run.workflow_state, list(document.steps))
        graph = StepGraph.of(document)
        steps = [_view(name, document, graph, record, job) for name, record in state.steps.items()]
        states = {s.name: s.state for s in steps}
        tools = {name: step.tool for name, step in document.steps.items()}
        picture = await asyncio.to_thread(self._chart, run.workflow_chart, document, graph, tools, states) if chart else None
        result = WorkflowResult.model_validate(job.result) if job.result else None
        return WorkflowStatus(run_id=job.id, name=document.name, state=job.state.value, source=arguments.source,
                              progress=job.progress, steps=steps, outputs=result.outputs if result else None,
                              failed_steps=[s.name for s in steps if s.state == "failed"], error=job.error,
                              mermaid=graph.mermaid(tools, states), chart=picture)  # fmt: skip

    async def list(self, principal: Principal, limit: int = 20) -> WorkflowList:
        runs = [WorkflowListItem(run_id=job.id, name=str(job.arguments.get("document", {}).get("name", "?")),
                                 state=job.state.value, source=str(job.arguments.get("source", "?")),
                                 progress=job.progress.message, created_at=job.created_at)  # fmt: skip
                for job in await self._engine.list(principal, kind=WORKFLOW_KIND, limit=limit)]
        return WorkflowList(runs=runs, examples=list_examples())

    # loading --------------------------------------------------------------------------------

    def _load(self, workflow: str | None, document: Any) -> tuple[WorkflowDocument, str]:
        if (workflow is None) == (document is None):
            raise InvalidArguments("workflow or document: give exactly one — the name of a workflow in "
                                   f"configs/workflows ({', '.join(list_examples())}) or a file's path, or the "
                                   "document itself")  # fmt: skip
        if document is not None:
            return parse_document(document, "document"), "inline"
        assert workflow is not None
        if workflow.removesuffix(".yaml") in list_examples():
            name = workflow.removesuffix(".yaml")
            return parse_document(config_file("workflows", f"{name}.yaml").read_text(), f"workflow {name}"), \
                f"configs/workflows/{name}.yaml"  # fmt: skip
        if not workflow.endswith(DOCUMENT_SUFFIXES):
            raise NotFound(f"workflow: no workflow {workflow!r} in configs/workflows ({', '.join(list_examples())}); "
                           f"a file's path ends with {', '.join(DOCUMENT_SUFFIXES)}")  # fmt: skip
        path = self._workspace.resolve(workflow, field="workflow")
        if not path.is_file():
            raise NotFound(f"workflow: {workflow} is not a file")
        return parse_document(path.read_text(encoding="utf-8"), f"workflow {workflow}"), self._workspace.shown(path)

    def _schemas(self) -> ResultSchemas:
        return ResultSchemas(self._job_results)

    @staticmethod
    def _chart(path: Path, document: WorkflowDocument, graph: StepGraph, tools: dict[str, str],
               states: dict[str, str]) -> ImageAttachment | None:  # fmt: skip
        from forge_mcp.workflows.charts import dag_png

        if graph.cycle():
            return None
        png = dag_png(f"workflow {document.name}", graph, tools, states)
        partial = path.with_suffix(".partial")
        partial.write_bytes(png)
        partial.replace(path)
        counts = ", ".join(f"{sum(1 for s in states.values() if s == state)} {state}"
                           for state in ("succeeded", "running", "pending", "failed", "skipped", "canceled")
                           if state in states.values())  # fmt: skip
        return ImageAttachment(data_base64=base64.b64encode(png).decode(),
                               description=f"the DAG of workflow {document.name}, coloured by step state: {counts}")


def list_examples() -> list[str]:
    return sorted(f.name.removesuffix(".yaml") for f in config_file("workflows").iterdir() if f.name.endswith(".yaml"))


def _inputs(document: WorkflowDocument, given: dict[str, Any]) -> dict[str, Any]:
    return {name: given.get(name, spec.default) for name, spec in document.inputs.items()}


def _problem_text(problem: Problem) -> str:
    where = f"step {problem.step}, {problem.field}" if problem.step else problem.field
    return f"{where}: {problem.message}"


def _view(name: str, document: WorkflowDocument, graph: StepGraph, record: Any, job: Job) -> StepView:
    state = record.state
    if job.terminal and state not in TERMINAL_STEP_STATES:
        state = "canceled"  # the run ended (canceled, failed) before this step did
    seconds = (record.finished_at or 0) - record.started_at if record.started_at and record.finished_at else None
    return StepView(name=name, tool=document.steps[name].tool, state=state,
                    needs=sorted(graph.needs[name], key=graph.order.index), attempts=record.attempt,
                    job_id=record.job_id, started_at=record.started_at, finished_at=record.finished_at,
                    seconds=round(seconds, 2) if seconds is not None else None, arguments=record.arguments,
                    result=preview(redacted(record.result)), error=record.error, skipped_because=record.skipped_because)  # fmt: skip
