"""Capabilities, one module per area. Each module exposes a `toolset`; the list below is
the allowlist the server builds its surfaces from."""

from __future__ import annotations

from forge_mcp.capabilities import Toolset


def all_toolsets() -> list[Toolset]:
    from forge_mcp.tools import (
        compute,
        core,
        datasets,
        evaluation,
        export,
        flywheel,
        jobs,
        models,
        monitoring,
        prompts,
        rag,
        serving,
        sweeps,
        training,
        workflows,
    )

    return [core.toolset, jobs.toolset, datasets.toolset, training.toolset, sweeps.toolset, models.toolset, evaluation.toolset,
            export.toolset, serving.toolset, workflows.toolset, flywheel.toolset, prompts.toolset, rag.toolset,
            compute.toolset, monitoring.toolset]  # fmt: skip
