"""The dataset job kind (dataset_prepare): makes a dataset version training-ready in a worker.
Its output is published as a new version by forge_mcp.datasets.publish, in the server."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.prepare import PrepareOptions, PrepareOutcome, prepare
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources


class PrepareArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: str  # '<name>@v<N>': the version prepared from
    dataset_path: str
    kind: DatasetKind
    rows: int
    output_name: str  # the name the result is published under
    options: PrepareOptions


def prepare_resources(arguments: PrepareArguments) -> Resources:
    # Measured (make bench-data): 1.2 GB peak for a million chats, pool processes included.
    return Resources(memory_gb=max(1.0, 1.5 * arguments.rows / 1_000_000))


def prepare_dataset(job: JobContext, arguments: PrepareArguments) -> PrepareOutcome:
    staging = job.run.output  # the prepared folder; published from there once the job succeeds
    staging.mkdir(exist_ok=True)
    options = arguments.options.model_copy()
    if options.tokenizer_path is not None:  # stored relative; checked again here, where it is read
        options.tokenizer_path = str(job.workspace.resolve_tree(options.tokenizer_path, field="tokenizer_path"))
    folder = job.workspace.resolve_tree(arguments.dataset_path, field="dataset")  # a link swapped in is refused here too
    return prepare(job, folder, arguments.kind, staging, options, arguments.rows)


DATASET_PREPARE = JobKind("dataset_prepare", PrepareArguments, PrepareOutcome, prepare_dataset, prepare_resources)
