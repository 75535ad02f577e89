"""The orchestration kinds this installation runs, in one list (beside the job kinds'
catalog, forge_mcp.jobs.catalog). Sweeps, workflows and flywheel cycles are added here as
they come, and trace_judge, which starts no child but runs here as they do: its work is
waiting on a judge's endpoint. The test kinds only when the test setting is on
(FORGE_TEST_JOB_KINDS=1)."""

from __future__ import annotations

from typing import Any

from forge_mcp.orchestration.kinds import OrchestrationKind


def orchestration_kinds(*, test_kinds: bool = False) -> dict[str, OrchestrationKind[Any, Any]]:
    from forge_mcp.flywheel.judging import TRACE_JUDGE
    from forge_mcp.sweeps.jobs import SWEEP
    from forge_mcp.workflows.jobs import WORKFLOW

    kinds: tuple[OrchestrationKind[Any, Any], ...] = (SWEEP, WORKFLOW, TRACE_JUDGE)
    if test_kinds:
        from forge_mcp.orchestration.testing_kinds import NESTED, THREE_STEPS

        kinds += (THREE_STEPS, NESTED)
    return {kind.name: kind for kind in kinds}
