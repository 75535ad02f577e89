"""dataset_prepare's publish step: the prepared folder in the job's run becomes the next
version of its name, when the job succeeds (a retry finds a version already published)."""

from __future__ import annotations

from pathlib import Path

from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.datasets.jobs import PrepareArguments
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.datasets.prepare import PrepareOutcome
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.run_dir import RunDir


class PreparedDataset(PrepareOutcome):
    dataset: DatasetInfo
    deduplicated: bool  # the same content was already published under this name


class PublishPreparedDataset:
    def __init__(self, importer: DatasetImporter, runs: Path) -> None:
        self._importer = importer
        self._runs = runs

    async def __call__(self, job: Job, arguments: PrepareArguments, result: PrepareOutcome) -> PreparedDataset:
        report = {"splits": result.splits, "pii": result.pii, "truncated_at_max_length": result.truncated_at_max_length,
                  "options": arguments.options.model_dump(mode="json"), "job_id": job.id}  # fmt: skip
        published = await self._importer.publish_prepared(
            arguments.output_name, arguments.dataset_id, RunDir(self._runs, job.id).output, result.fingerprint, result.kind,
            result.rows, [step.model_dump() for step in result.steps], report,
        )  # fmt: skip
        return PreparedDataset(**result.model_dump(), dataset=published.dataset, deduplicated=published.deduplicated)
