"""What the traces_to_dataset job takes and gives back, and the report clients read: how many
traces were selected, the rows written per kind, and why the others were left out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.datasets.prepare import PrepareOptions, PrepareOutcome, StepCount

_STEP_REASONS = {"normalise": "invalid", "clean": "empty", "length_filter": "length", "dedup_exact": "duplicate",
                 "dedup_near": "near_duplicate"}  # fmt: skip


class TraceSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: DatasetKind  # messages (SFT rows) or preference (DPO pairs)
    path: str  # the kind's folder, relative to the workspace (flywheel/sources.py)
    rows: int
    output_name: str  # the dataset it is published as


class Selection(BaseModel):
    """What the server decided before the job: which traces, and why some gave no row."""

    model_config = ConfigDict(extra="forbid")
    filters: dict[str, Any]
    traces_selected: int
    max_traces: int
    min_rating: int
    judge_min_score: int | None
    sft_dropped: dict[str, int]  # traces that gave no SFT row, by reason
    pairs: dict[str, int]  # DPO pairs by where they came from
    held_out: str | None = None  # the dataset whose questions were kept out of the rows
    notes: list[str] = Field(default_factory=list)


class TracesToDatasetArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str  # the request's folder under datasets/.from-traces, relative to the workspace
    sources: list[TraceSource]
    options: PrepareOptions
    selection: Selection


class KindOutput(BaseModel):
    kind: str
    output_name: str
    prepared: PrepareOutcome | None  # None: no row was left
    empty_reason: str | None = None


class TracesToDatasetOutcome(BaseModel):
    outputs: list[KindOutput]


class KindReport(BaseModel):
    dataset: str | None = Field(description="'<name>@v<N>', or null when no row was left")
    rows_built: int = Field(description="Rows made from the traces, before cleaning and dedup")
    rows: int = Field(description="Rows written")
    dropped: dict[str, int] = Field(description="Left out, by reason")
    splits: dict[str, int]
    pairs: dict[str, int] | None = Field(None, description="DPO pairs by where they came from")


class TraceDatasets(BaseModel):
    datasets: list[DatasetInfo] = Field(description="The versions published: SFT (messages), DPO pairs (preference)")
    traces_selected: int
    sft: KindReport | None
    dpo: KindReport | None
    notes: list[str]


def prepare_drops(steps: list[StepCount]) -> dict[str, int]:
    """dataset_prepare's step counts as the reasons rows were dropped."""
    dropped = dict.fromkeys(("invalid", "empty", "pii", "duplicate", "near_duplicate"), 0)
    for step in steps:
        reason = "pii" if step.step.startswith("pii_") else _STEP_REASONS.get(step.step)
        if reason is not None:
            dropped[reason] = step.rows_in - step.rows_out
    return dropped
