"""The job kinds that read a model version's weights: evaluate, compare (two models on the
same rows) and export. What they produce is recorded by forge_mcp.models.publish, in the server."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from forge_mcp.backends.export import ExportResult, Format, Quantization
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources
from forge_mcp.models.evaluation import Comparison, Decoding, Evaluation
from forge_mcp.models.judge import JudgeConfig
from forge_mcp.security.urls import check_outbound_url

if TYPE_CHECKING:
    from pathlib import Path

    from forge_mcp.backends.evaluate import Target

EVALUATE_MEMORY_GB = 1.0
GIB = 1024**3


class ModelTarget(BaseModel):
    """One model to load: a registered version (model_id) or a local folder."""

    model_config = ConfigDict(extra="forbid")

    label: str
    model_path: str
    adapter_path: str | None = None
    model_id: str | None = None  # the registered version its metrics are stored on


class Scoring(BaseModel):
    """The rows and the decoding every scoring job gets."""

    model_config = ConfigDict(extra="forbid")

    dataset_path: str
    dataset_id: str
    split: str | None
    limit: int
    decoding: Decoding
    judge: JudgeConfig | None = None
    dataset_kind: str | None = None  # set when the dataset has no splits: its rows are read in canonical form


class EvaluateArguments(ModelTarget, Scoring):
    pass


class CompareArguments(Scoring):
    a: ModelTarget
    b: ModelTarget


class ExportArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str
    model_path: str
    adapter_path: str | None
    format: Format
    quantization: Quantization | None
    push_to_hub: str | None = None
    weight_bytes: int = 0  # of the source's safetensors, for the memory estimate


def scoring_resources(arguments: Scoring) -> Resources:
    return Resources(memory_gb=EVALUATE_MEMORY_GB)


def export_resources(arguments: ExportArguments) -> Resources:
    # Source weights, a merged copy and the export, as f32, plus the runtime.
    return Resources(memory_gb=round(0.6 + 3 * arguments.weight_bytes / GIB, 2))


def _target(job: JobContext, target: ModelTarget) -> Target:
    """The folders to load, checked again where they are read (links can change after submission)."""
    from forge_mcp.backends.evaluate import Target

    workspace = job.workspace
    return Target(target.label, workspace.resolve_tree(target.model_path, field="model"),
                  workspace.resolve_tree(target.adapter_path, field="model") if target.adapter_path else None)  # fmt: skip


def _rows(job: JobContext, dataset_path: str) -> Path:
    """The dataset's rows, its folder checked again where it is read."""
    return job.workspace.resolve_tree(dataset_path, field="dataset") / "data.parquet"


def _judge_in_worker(judge: JudgeConfig | None) -> JudgeConfig | None:
    if judge is not None:
        check_outbound_url(judge.url, "judge_url")  # again, where the calls are made
    return judge


def evaluate_model(job: JobContext, arguments: EvaluateArguments) -> Evaluation:
    from forge_mcp.backends.evaluate import evaluate

    return evaluate(job, _target(job, arguments), _rows(job, arguments.dataset_path), arguments.dataset_id, arguments.split,
                    arguments.limit, arguments.decoding, _judge_in_worker(arguments.judge), arguments.dataset_kind)  # fmt: skip


def compare_two_models(job: JobContext, arguments: CompareArguments) -> Comparison:
    from forge_mcp.backends.evaluate import compare_models

    return compare_models(job, _target(job, arguments.a), _target(job, arguments.b), _rows(job, arguments.dataset_path),
                          arguments.dataset_id, arguments.split, arguments.limit, arguments.decoding,
                          _judge_in_worker(arguments.judge), arguments.dataset_kind)  # fmt: skip


def export_model(job: JobContext, arguments: ExportArguments) -> ExportResult:
    from forge_mcp.backends.export import export

    workspace = job.workspace  # the folders are checked again where they are read
    adapter = workspace.resolve_tree(arguments.adapter_path, field="model") if arguments.adapter_path else None
    return export(job, arguments.model_id, workspace.resolve_tree(arguments.model_path, field="model"), adapter,
                  arguments.format, arguments.quantization, arguments.push_to_hub)  # fmt: skip


EVALUATE = JobKind("evaluate", EvaluateArguments, Evaluation, evaluate_model, scoring_resources, warm=True)
COMPARE = JobKind("compare", CompareArguments, Comparison, compare_two_models, scoring_resources, warm=True)
EXPORT = JobKind("export", ExportArguments, ExportResult, export_model, export_resources, warm=True)
