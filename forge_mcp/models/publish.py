"""The publish steps of the model job kinds: an evaluation's (or a comparison's) metrics are
stored on the registered versions scored, where model_promote's gates read them; a verified
export moves under its version and is indexed."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from forge_mcp.backends.export import ExportResult
from forge_mcp.jobs.models import Job
from forge_mcp.models.evaluation import Comparison, Evaluation
from forge_mcp.models.jobs import CompareArguments, EvaluateArguments, ExportArguments
from forge_mcp.models.records import ModelExport
from forge_mcp.models.repository import ModelRepository
from forge_mcp.workspace import Workspace


def stored_metrics(evaluation: Evaluation) -> dict[str, Any]:
    """What goes on a registry version: its metrics under their registry names, and on what data."""
    return {**evaluation.values(), "evaluated_on": evaluation.data_label()}


class StoreEvaluationMetrics:
    def __init__(self, models: ModelRepository) -> None:
        self._models = models

    async def __call__(self, job: Job, arguments: EvaluateArguments, result: Evaluation) -> Evaluation:
        if arguments.model_id:
            await self._models.add_metrics(arguments.model_id, stored_metrics(result))
        return result


class StoreComparisonMetrics:
    def __init__(self, models: ModelRepository) -> None:
        self._models = models

    async def __call__(self, job: Job, arguments: CompareArguments, result: Comparison) -> Comparison:
        for target, evaluation in ((arguments.a, result.a), (arguments.b, result.b)):
            if target.model_id:
                await self._models.add_metrics(target.model_id, stored_metrics(evaluation))
        return result


class PublishExport:
    """Moves a verified export from its job's folder into models/<name>/v<N>/exports/<key>
    (replacing an older export of the same key) and indexes it; the result names where it is."""

    def __init__(self, workspace: Workspace, models: ModelRepository) -> None:
        self._workspace = workspace
        self._models = models

    async def __call__(self, job: Job, arguments: ExportArguments, result: ExportResult) -> ExportResult:
        version = await self._models.get(arguments.model_id)
        key = result.format if result.format != "gguf" else f"gguf-{result.quantization}"
        target = self._workspace.writable(self._workspace.root / version.path / "exports" / key)
        await asyncio.to_thread(self._place, self._workspace.root / result.path, target, key)
        gguf = next((name for name in result.files if name.endswith(".gguf")), None)
        export = await self._models.add_export(ModelExport(
            model_id=version.id, key=key, format=result.format, quantization=result.quantization,
            path=self._workspace.relative(target), file=gguf, job_id=job.id,
            verification=result.verification.model_dump(mode="json"), created_at=time.time()))  # fmt: skip
        return result.model_copy(update={"path": export.path})

    @staticmethod
    def _place(source: Path, target: Path, key: str) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.with_name(f".{key}.old-{uuid.uuid4().hex[:8]}")
        if target.exists():
            target.rename(old)
        source.rename(target)
        shutil.rmtree(old, ignore_errors=True)
