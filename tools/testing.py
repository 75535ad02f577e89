"""Test-only: start the test job kinds (forge_mcp.jobs.testing_kinds) and test orchestration
kinds (forge_mcp.orchestration.testing_kinds) through the real protocols. The server offers
this toolset only when the test setting is on (FORGE_TEST_JOB_KINDS=1), never otherwise."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.compute.models import ComputeTarget
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("testing", "Test-only: start the test job and orchestration kinds. Never offered on a real server.")


@toolset.capability(scope="train", title="Start a test job", long_running=True)
async def test_job_start(
    services: Services,
    principal: Principal,
    kind: Annotated[str, Field(pattern=r"^test_[a-z_]{1,40}$", description="A test kind, e.g. test_sleep or test_orchestration")],
    arguments: Annotated[dict[str, Any], Field(description="The kind's arguments")] = {},  # noqa: B006 (never mutated)
    idempotency_key: Annotated[str | None, Field(max_length=200)] = None,
    compute: ComputeTarget = None,
    retry_elsewhere: bool = False,
) -> JobHandle:
    """Starts a job (or orchestration) of a test kind as yours and returns its handle; follow it
    with job_wait. Test servers only."""
    return await services.engine.submit(kind, arguments, principal.name, idempotency_key=idempotency_key,
                                        host=compute, retry_elsewhere=retry_elsewhere)  # fmt: skip
