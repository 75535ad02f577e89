"""The traces_to_dataset job kind: the rows the server built from traces go through
dataset_prepare's own steps (normalise, clean, PII, exact and near dedup, split) in a worker,
one kind after the other. Its outputs are published by forge_mcp.flywheel.publish."""

from __future__ import annotations

from forge_mcp.datasets.prepare import prepare
from forge_mcp.errors import InvalidArguments
from forge_mcp.flywheel.models import KindOutput, TracesToDatasetArguments, TracesToDatasetOutcome
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources


def build_resources(arguments: TracesToDatasetArguments) -> Resources:
    rows = max((source.rows for source in arguments.sources), default=0)
    return Resources(memory_gb=max(1.0, 1.5 * rows / 1_000_000))  # as dataset_prepare's, one kind at a time


def build_datasets(job: JobContext, arguments: TracesToDatasetArguments) -> TracesToDatasetOutcome:
    outputs = []
    for source in arguments.sources:
        folder = job.workspace.resolve_tree(source.path, field="source")
        staging = job.run.output / source.kind.value  # published from there once the job succeeds
        staging.mkdir(parents=True, exist_ok=True)
        job.log(f"{source.kind.value}: {source.rows} rows from traces, preparing as {source.output_name}")
        try:
            prepared = prepare(job, folder, source.kind, staging, arguments.options, source.rows)
        except InvalidArguments as exc:  # nothing left after cleaning and dedup: the other kind may still have rows
            outputs.append(KindOutput(kind=source.kind.value, output_name=source.output_name, prepared=None,
                                      empty_reason=exc.message))  # fmt: skip
            continue
        outputs.append(KindOutput(kind=source.kind.value, output_name=source.output_name, prepared=prepared))
    if not any(output.prepared for output in outputs):
        raise InvalidArguments("no rows are left after cleaning, PII and dedup (" + "; ".join(
            f"{o.kind}: {o.empty_reason}" for o in outputs) + "); select more traces, or set dedup or pii less strictly")  # fmt: skip
    return TracesToDatasetOutcome(outputs=outputs)


TRACES_TO_DATASET = JobKind(
    "traces_to_dataset", TracesToDatasetArguments, TracesToDatasetOutcome, build_datasets, build_resources
)
