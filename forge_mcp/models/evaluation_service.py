"""Scoring models for a caller: start a job that evaluates one model, or two side by side, on a
dataset's held-out rows (optionally graded by an LLM judge), and show a finished comparison.
Every check (the folders, the base model, the split, the judge) happens here, before anything
is queued; the job belongs to the caller, and only they (or an admin) see its report."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.capabilities import ImageAttachment
from forge_mcp.datasets.kinds import CANONICAL, DatasetKind
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import Conflict, InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job, JobHandle
from forge_mcp.models.evaluation import Comparison, Decoding, chart_png
from forge_mcp.models.judge_settings import checked_judge
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.security.principal import Principal
from forge_mcp.workspace import Workspace

EVALUATE_KIND = "evaluate"
COMPARE_KIND = "compare"


@dataclass(frozen=True)
class ScoringRequest:
    """What to score on and how, the same for one model or two: the dataset's rows (a split, by
    default 'test'), greedy decoding, and an optional judge (the key only as the name of a
    server environment variable)."""

    dataset: str
    split: str | None = None
    limit: int = 200
    max_new_tokens: int = 64
    judge_url: str | None = None
    judge_model: str | None = None
    judge_api_key_env: str | None = None


class ComparisonReport(BaseModel):
    job_id: str
    comparison: Comparison
    image: ImageAttachment | None = Field(None, description="The grouped bar chart of both models' metrics")


class EvaluationService:
    def __init__(self, workspace: Workspace, models: ModelRegistry, datasets: DatasetRepository, engine: JobEngine) -> None:
        self._workspace = workspace
        self._models = models
        self._datasets = datasets
        self._engine = engine

    async def evaluate(
        self,
        principal: Principal,
        scoring: ScoringRequest,
        *,
        model: str | None = None,
        base_model: str | None = None,
        idempotency_key: str | None = None,
        compute: str | None = None,
    ) -> JobHandle:
        """Score a registered version (`model`) or a local model folder (`base_model`): give one."""
        require_extra("train", "model_evaluate")
        target = await self._target(model, base_model)
        arguments = {**target, **await self._scoring(scoring)}
        return await self._engine.submit(EVALUATE_KIND, arguments, principal.name, idempotency_key=idempotency_key,
                                         host=compute)  # fmt: skip

    async def job_arguments(self, train_job: Job, scoring: ScoringRequest) -> dict[str, Any]:
        """An evaluate job's arguments that score what a training job that SUCCEEDED left (its
        adapter over its base, or its full weights): a sweep's trial, before anything is registered."""
        require_extra("train", "an evaluation objective")
        adapter = str((train_job.result or {})["adapter"])
        full = not adapter.endswith("/adapter")
        target = {"label": f"{train_job.id} ({'weights' if full else 'adapter'})", "model_id": None,
                  "model_path": adapter if full else str(train_job.arguments["base_path"]),
                  "adapter_path": None if full else adapter}  # fmt: skip
        return {**target, **await self._scoring(scoring)}

    async def check_scoring(self, scoring: ScoringRequest) -> None:
        """What an evaluate job would be refused for (the dataset, its split, the judge), now."""
        await self._scoring(scoring)

    async def compare(
        self,
        principal: Principal,
        scoring: ScoringRequest,
        model_a: str,
        *,
        model_b: str | None = None,
        base_model: str | None = None,
        idempotency_key: str | None = None,
        compute: str | None = None,
    ) -> JobHandle:
        """Score `model_a` and, on the same rows, `model_b` (another version, or 'base': the base model
        model_a was trained from, the default) or the local folder `base_model`."""
        require_extra("train", "model_compare")
        if model_b is not None and base_model is not None:
            raise InvalidArguments("model_b or base_model: give one — a registered version (or 'base'), or a local model folder")
        first = await self._target(model_a, None)
        if base_model is not None:
            second = await self._target(None, base_model)
        elif model_b is None or model_b == "base":
            second = await self._base_target(model_a, "model_b")
        else:
            second = await self._target(model_b, None)
        if (first["model_path"], first["adapter_path"]) == (second["model_path"], second["adapter_path"]):
            raise InvalidArguments(f"model_b: {second['label']} is the same model as model_a; compare two different models")
        arguments = {"a": first, "b": second, **await self._scoring(scoring)}
        return await self._engine.submit(COMPARE_KIND, arguments, principal.name, idempotency_key=idempotency_key,
                                         host=compute)  # fmt: skip

    async def comparison_report(self, principal: Principal, job_id: str) -> ComparisonReport:
        """A finished compare job of `principal`'s (an admin's: anyone's), with its chart."""
        job = await self._engine.get(job_id, principal)
        if job.kind != COMPARE_KIND:
            raise InvalidArguments(f"job_id: {job_id} is a {job.kind} job; give a job that model_compare started")
        if job.state.value != "SUCCEEDED" or job.result is None:
            raise Conflict(f"job_id: {job_id} is {job.state.value}; wait for it with job_wait (a failed one has nothing to show)")
        comparison = Comparison(**job.result)
        png = await asyncio.to_thread(_chart, self._workspace.run(job_id).chart, comparison)
        image = ImageAttachment(data_base64=base64.b64encode(png).decode(),
                                description=f"grouped bar chart: {comparison.a.model} (a) vs {comparison.b.model} (b)")  # fmt: skip
        return ComparisonReport(job_id=job_id, comparison=comparison, image=image)

    async def _target(self, model: str | None, base_model: str | None) -> dict[str, str | None]:
        """What a scoring job loads: a registered version (an adapter over its base, or full
        weights), or a local model folder. model_id is set when results go back on a version."""
        if (model is None) == (base_model is None):
            raise InvalidArguments("model or base_model: give exactly one — a registered version, or a local model folder")
        if model is not None:
            version, model_path, adapter_path = await self._models.weights(model)
            return {"label": version.id, "model_path": model_path, "model_id": version.id, "adapter_path": adapter_path}
        folder = await asyncio.to_thread(self._workspace.resolve_tree, base_model, field="base_model")
        if not (folder / "config.json").is_file():
            raise InvalidArguments(f"base_model: {base_model} has no config.json; give a Hugging Face model folder")
        return {"label": str(base_model), "model_path": self._workspace.shown(folder), "model_id": None, "adapter_path": None}

    async def _base_target(self, model: str, field: str) -> dict[str, str | None]:
        """The base model a registered version was trained from (or applies to), as a target."""
        version = await self._models.get(model)
        if version.base_model is None:
            raise InvalidArguments(f"{field}: {version.id} records no base model; give base_model, a local model folder")
        return await self._target(None, version.base_model)

    async def _scoring(self, scoring: ScoringRequest) -> dict[str, Any]:
        """What every scoring job gets: the rows (a chat split, or every row of a dataset without
        splits), the decoding, the judge."""
        info = await self._datasets.get(scoring.dataset)
        arguments = {"dataset_path": info.path, "dataset_id": info.id, **_rows_to_score(info, scoring.split),
                     "limit": scoring.limit, "decoding": Decoding(max_new_tokens=scoring.max_new_tokens).model_dump()}  # fmt: skip
        judge = await checked_judge(scoring.judge_url, scoring.judge_model, scoring.judge_api_key_env)
        if judge is not None:
            arguments["judge"] = judge.model_dump()
        return arguments


def _rows_to_score(info: DatasetInfo, split: str | None) -> dict[str, Any]:
    """The split to score: the caller's, else 'test'. A dataset without splits (a fresh import,
    never prepared) is scored on all its rows, as training reads them (in canonical form), so
    the call after training on a fresh import works; naming a split it lacks is refused."""
    if CANONICAL.get(DatasetKind(info.kind)) is not DatasetKind.MESSAGES:
        raise InvalidArguments(f"dataset: {info.id} holds {info.kind} rows; evaluation needs chat rows (messages, or "
                               "sharegpt, alpaca or completion rows, read as messages)")  # fmt: skip
    splits = info.report.get("splits") or {}
    if not splits:
        if split is not None:
            raise InvalidArguments(f"split: {info.id} has no splits (it was imported, not prepared); leave split out to "
                                   f"evaluate on all {info.rows} rows, or run dataset_prepare on it to make a test split")  # fmt: skip
        return {"split": None, "dataset_kind": info.kind}
    chosen = split or "test"
    if chosen not in splits:
        raise InvalidArguments(f"split: {info.id} has no split {chosen!r}; its splits are {', '.join(splits)}")
    return {"split": chosen}


def _chart(path: Path, comparison: Comparison) -> bytes:
    """The PNG the job wrote; drawn again from the table when the job could not write one."""
    return path.read_bytes() if path.is_file() else chart_png(comparison)
