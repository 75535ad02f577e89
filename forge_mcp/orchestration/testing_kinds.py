"""Orchestration kinds for the engine's own tests, beside the test job kinds
(forge_mcp.jobs.testing_kinds) and enabled by the same setting (FORGE_TEST_JOB_KINDS).

- test_orchestration: three steps of test_sleep, each declaring one GPU — a and b in
  parallel, then c once both succeeded. On a one-GPU engine it finishes only if the
  orchestration itself holds no slot. `fail_step` makes that step a test_fail instead.
- test_orchestration_nested: one step, a test_orchestration: an orchestration's child may be
  an orchestration (a cancel reaches the grandchildren through it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.orchestration.context import OrchestrationContext
from forge_mcp.orchestration.kinds import OrchestrationKind

Step = Literal["a", "b", "c"]


class ThreeStepsArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(1.0, ge=0, le=3600, description="how long each step's job sleeps")
    gpus: int = Field(1, ge=0, le=64, description="GPU slots each step's job claims (it uses none)")
    fail_step: Step | None = Field(None, description="this step fails (test_fail) instead of sleeping")


class ThreeStepsResult(BaseModel):
    children: dict[str, str] = Field(description="step -> the job that ran it")
    slept_s: float = Field(description="what the sleeping steps reported, added up")


async def three_steps(ctx: OrchestrationContext, arguments: ThreeStepsArguments) -> ThreeStepsResult:
    def step_job(step: Step) -> tuple[str, dict[str, object]]:
        if step == arguments.fail_step:
            return "test_fail", {"message": f"step {step} failed on purpose", "after_s": arguments.seconds}
        return "test_sleep", {"seconds": arguments.seconds, "gpus": arguments.gpus, "steps": 4}

    ctx.progress(0, 3, "steps a and b")
    a = await ctx.start_child(*step_job("a"), step="a")
    b = await ctx.start_child(*step_job("b"), step="b")
    first = await ctx.wait(a, b)
    ctx.progress(2, 3, "step c")
    c = await ctx.start_child(*step_job("c"), step="c")
    last = await ctx.wait(c)
    ctx.progress(3, 3, "done")
    return ThreeStepsResult(
        children={child.step: child.job_id for child in (a, b, c)},
        slept_s=round(sum(float((job.result or {}).get("slept_s", 0.0)) for job in first + last), 3),
    )


class NestedResult(BaseModel):
    inner: str = Field(description="the test_orchestration it ran as its one step")


async def nested(ctx: OrchestrationContext, arguments: ThreeStepsArguments) -> NestedResult:
    inner = await ctx.start_child("test_orchestration", arguments.model_dump(mode="json"), step="inner")
    await ctx.wait(inner)
    return NestedResult(inner=inner.job_id)


THREE_STEPS = OrchestrationKind("test_orchestration", ThreeStepsArguments, ThreeStepsResult, three_steps)
NESTED = OrchestrationKind("test_orchestration_nested", ThreeStepsArguments, NestedResult, nested)
