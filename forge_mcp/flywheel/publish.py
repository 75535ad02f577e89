"""traces_to_dataset's publish step: each kind's prepared folder in the job's run becomes the next
version of its name when the job succeeds, with lineage back to the traces it was built from
(`source`: their ids and the filters that selected them) and the report; then the request's
folder of rows is removed. A retry finds the versions already published."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.flywheel.models import (
    KindOutput,
    KindReport,
    TraceDatasets,
    TraceSource,
    TracesToDatasetArguments,
    TracesToDatasetOutcome,
    prepare_drops,
)  # fmt: skip
from forge_mcp.flywheel.sources import LINEAGE, read_lineage
from forge_mcp.jobs.models import Job
from forge_mcp.workspace import Workspace

JOB = "traces_to_dataset"


class PublishTraceDatasets:
    def __init__(self, importer: DatasetImporter, workspace: Workspace) -> None:
        self._importer = importer
        self._workspace = workspace

    async def __call__(self, job: Job, arguments: TracesToDatasetArguments, result: TracesToDatasetOutcome) -> TraceDatasets:
        selection = arguments.selection
        reports: dict[str, KindReport] = {}
        published: list[DatasetInfo] = []
        for source, output in zip(arguments.sources, result.outputs, strict=True):
            dataset = await self._publish(job, arguments, source, output) if output.prepared is not None else None
            if dataset is not None:
                published.append(dataset)
            reports[source.kind.value] = _report(source, output, dataset, arguments)
        await asyncio.to_thread(shutil.rmtree, self._workspace.root / arguments.folder, True)
        notes = [*selection.notes, *(f"{o.kind}: {o.empty_reason}" for o in result.outputs if o.prepared is None)]
        return TraceDatasets(datasets=published, traces_selected=selection.traces_selected, sft=reports.get("messages"),
                             dpo=reports.get("preference"), notes=notes)  # fmt: skip

    async def _publish(self, job: Job, arguments: TracesToDatasetArguments, source: TraceSource,
                       output: KindOutput) -> DatasetInfo:  # fmt: skip
        prepared = output.prepared
        assert prepared is not None
        folder = self._workspace.root / source.path
        # Gone only when this publication already happened (then the version is found by its content).
        traces = await asyncio.to_thread(read_lineage, folder) if (folder / LINEAGE).is_file() else []
        lineage = {"traces": traces, "filters": arguments.selection.filters}
        report = {"splits": prepared.splits, "pii": prepared.pii, "options": arguments.options.model_dump(mode="json"),
                  "job_id": job.id}  # fmt: skip
        steps = [{"step": "traces", "rows_in": arguments.selection.traces_selected, "rows_out": source.rows,
                  "detail": _selection_report(arguments, source)}, *(s.model_dump() for s in prepared.steps)]  # fmt: skip
        done = await self._importer.publish_output(source.output_name, self._workspace.run(job.id).output / source.kind.value,
                                                   prepared.fingerprint, prepared.kind, prepared.rows, steps, report, lineage,
                                                   job=JOB)  # fmt: skip
        return done.dataset


def _selection_report(arguments: TracesToDatasetArguments, source: TraceSource) -> dict[str, Any]:
    selection = arguments.selection
    if source.kind.value == "messages":
        return {"sft_rows": source.rows, "dropped": selection.sft_dropped, "min_rating": selection.min_rating,
                "judge_min_score": selection.judge_min_score}  # fmt: skip
    return {"pairs": selection.pairs}


def _report(source: TraceSource, output: KindOutput, dataset: DatasetInfo | None,
            arguments: TracesToDatasetArguments) -> KindReport:  # fmt: skip
    prepared = output.prepared
    sft = source.kind.value == "messages"
    dropped = {**(arguments.selection.sft_dropped if sft else {}), **(prepare_drops(prepared.steps) if prepared else {})}
    return KindReport(dataset=dataset.id if dataset else None, rows_built=source.rows, rows=prepared.rows if prepared else 0,
                      dropped=dropped, splits=prepared.splits if prepared else {},
                      pairs=None if sft else arguments.selection.pairs)  # fmt: skip
