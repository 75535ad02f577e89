"""Workflows: the lifecycle as one declarative DAG of tool calls, validated up front and run as a
durable orchestration, independent branches in parallel."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services
from forge_mcp.workflows.service import WorkflowCheck, WorkflowList, WorkflowStatus

toolset = Toolset("workflows", "DAG workflows of tool calls: validate, run durably with parallel branches, follow.")

Workflow = Annotated[str | None, Field(max_length=512, description="A configs/workflows name (workflow_list shows "
                                       "them) or a .yaml/.json file in the workspace")]  # fmt: skip
Document = Annotated[dict[str, Any] | None, Field(description="Or the document inline: {name, inputs, steps: "
                                                        "{step: {tool, arguments, needs, when, retries, timeout_s, "
                                                        "on_failure}}, outputs}")]  # fmt: skip
Inputs = Annotated[dict[str, Any] | None, Field(description="Values for the workflow's inputs")]


@toolset.capability(scope="read", title="Validate a workflow", read_only=True)
async def workflow_validate(
    services: Services, principal: Principal, workflow: Workflow = None, document: Document = None, inputs: Inputs = None
) -> WorkflowCheck:
    """Use before workflow_run; runs nothing. Lists every problem at once, with step and field:
    unknown tools or ones your scopes disallow, unknown or missing arguments, wrong types, cycles,
    references to unknown steps or fields (${inputs.x}, ${step.field[0]}), conditions that do not
    parse. Returns the plan (levels of steps that run together) and a Mermaid flowchart. Instant,
    read-only."""
    return await services.workflows.check(principal, workflow, document, inputs)


@toolset.capability(scope="read", title="Run a workflow", long_running=True, job_kind="workflow")
async def workflow_run(
    services: Services,
    principal: Principal,
    workflow: Workflow = None,
    document: Document = None,
    inputs: Inputs = None,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Runs lifecycle steps as one job once the workflow validates: each step starts when the steps
    it needs have ended, independent ones at once, calling its tool with your rights; a step whose
    `when` is false, and those needing it, are skipped. Survives a restart without rerunning
    finished steps. Costs what its steps cost; follow with job_wait or workflow_status; job_cancel
    stops it and its steps' jobs."""
    return await services.workflows.run(principal, workflow, document, inputs, idempotency_key=idempotency_key)


@toolset.capability(scope="read", title="Show a workflow run", read_only=True)
async def workflow_status(
    services: Services,
    principal: Principal,
    run_id: Annotated[str, Field(pattern=r"^job_[0-9a-f]{8,40}$", description="The job_id workflow_run returned")],
    chart: Annotated[bool, Field(description="Attach a PNG of the DAG coloured by state")] = True,
) -> WorkflowStatus:
    """A run's steps (state, timing, job, resolved arguments with secrets hidden, short result or
    error), its outputs once it succeeded, the DAG as Mermaid and a PNG (`chart` false skips it).
    Read-only."""
    return await services.workflows.status(principal, run_id, chart=chart)


@toolset.capability(scope="read", title="List workflow runs", read_only=True)
async def workflow_list(services: Services, principal: Principal, limit: Annotated[int, Field(ge=1, le=200)] = 20) -> WorkflowList:
    """Your workflow runs, newest first, and example workflows to start from. Instant, read-only."""
    return await services.workflows.list(principal, limit)
