"""Dataset operations for a caller: import a file or folder, list and look up versions,
inspect one, and start a job that prepares one (checked here, before anything is queued)."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from forge_mcp.capabilities import ImageAttachment
from forge_mcp.datasets.importer import DatasetImporter
from forge_mcp.datasets.inspect import Inspection, inspect_rows
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.models import DatasetInfo, ImportResult
from forge_mcp.datasets.prepare import PiiMode, PrepareOptions, SplitMethod
from forge_mcp.datasets.readers import SourceFormat
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.references import check_name
from forge_mcp.security.principal import Principal
from forge_mcp.workspace import Workspace

AUTO_SAMPLE_ROWS = 200_000  # dataset_inspect samples larger datasets unless told otherwise
PREPARE_KIND = "dataset_prepare"


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


class DatasetInspection(Inspection):
    histogram: ImageAttachment | None = None


class DatasetService:
    def __init__(
        self, workspace: Workspace, repository: DatasetRepository, importer: DatasetImporter, engine: JobEngine
    ) -> None:
        self._workspace = workspace
        self._repo = repository
        self._importer = importer
        self._engine = engine

    async def import_(
        self,
        path: str,
        name: str,
        *,
        format: SourceFormat | Literal["auto"] = "auto",
        kind: str = "auto",
        column_map: dict[str, str] | None = None,
        split: str | None = None,
        max_bad_fraction: float = 0.1,
    ) -> ImportResult:
        """`format` and `kind` "auto": guessed from the extension and detected from the rows."""
        return await self._importer.import_(
            path,
            name,
            fmt=None if format == "auto" else format,
            kind=None if kind == "auto" else DatasetKind(kind),
            column_map=column_map,
            split=split,
            max_bad_fraction=max_bad_fraction,
        )

    async def list(self, name: str | None = None, limit: int = 50) -> DatasetList:
        return DatasetList(datasets=await self._repo.list(name, limit))

    async def get(self, reference: str) -> DatasetInfo:
        """'<name>' (the newest version) or '<name>@v<N>'."""
        return await self._repo.get(reference)

    async def count(self) -> int:
        return await self._repo.count()

    async def inspect(
        self,
        dataset: str,
        *,
        sample_rows: int | None = None,
        near_threshold: float = 0.85,
        samples: int = 3,
        tokenizer_path: str | None = None,
        histogram: bool = False,
    ) -> DatasetInspection:
        info = await self._repo.get(dataset)
        tokenizer = None
        if tokenizer_path is not None:
            folder = await asyncio.to_thread(self._workspace.resolve_tree, tokenizer_path, field="tokenizer_path")
            tokenizer = await asyncio.to_thread(_load_tokenizer, folder)
        if sample_rows is None and info.rows > AUTO_SAMPLE_ROWS:
            sample_rows = AUTO_SAMPLE_ROWS
        inspection, lengths = await asyncio.to_thread(
            inspect_rows,
            info.id,
            await asyncio.to_thread(self._workspace.resolve_tree, info.path, field="dataset"),
            DatasetKind(info.kind),
            info.rows,
            sample_rows=sample_rows,
            near_threshold=near_threshold,
            samples=samples,
            tokenizer=tokenizer,
        )
        image = None
        if histogram and lengths:
            from forge_mcp.charts import histogram_png

            png = await asyncio.to_thread(histogram_png, f"{info.id}: characters per row", lengths, "characters")
            image = ImageAttachment(data_base64=base64.b64encode(png).decode(), description="histogram of characters per row")
        return DatasetInspection(**inspection.model_dump(), histogram=image)

    async def prepare(
        self,
        principal: Principal,
        dataset: str,
        *,
        output_name: str | None = None,
        clean: bool = True,
        dedup: Literal["none", "exact", "near"] = "near",
        near_threshold: float = 0.85,
        pii: PiiMode = "redact",
        min_chars: int | None = None,
        max_chars: int | None = None,
        max_length: int | None = None,
        tokenizer_path: str | None = None,
        split_method: SplitMethod = "random",
        test_fraction: float = 0.1,
        validation_fraction: float = 0.0,
        split_column: str | None = None,
        seed: int = 0,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Checks the options against the dataset (every refusal before anything is queued) and
        starts the job as `principal`'s; the job publishes the new version if it succeeds."""
        info = await self._repo.get(dataset)
        if (max_length is None) != (tokenizer_path is None):
            raise InvalidArguments("max_length and tokenizer_path: give both for the chat-template check, or neither")
        if split_method != "random" and split_column is None:
            raise InvalidArguments(f"split_column: a {split_method} split needs the column to split by")
        if split_column is not None and split_column not in {c.name for c in info.columns}:
            raise InvalidArguments(f"split_column: {info.id} has no column {split_column!r}; its columns are "
                                   + ", ".join(c.name for c in info.columns))  # fmt: skip
        if test_fraction + validation_fraction >= 1:
            raise InvalidArguments("test_fraction + validation_fraction must leave rows for training (sum below 1)")
        tokenizer = None
        if tokenizer_path is not None:  # checked now, stored as the caller sees it (relative), checked again in the job
            folder = await asyncio.to_thread(self._workspace.resolve_tree, tokenizer_path, field="tokenizer_path")
            tokenizer = self._workspace.shown(folder)
        if tokenizer is not None:
            require_extra("train", "the chat-template check")
        options = PrepareOptions(
            clean=clean, dedup=dedup, near_threshold=near_threshold, pii=pii, min_chars=min_chars, max_chars=max_chars,
            max_length=max_length, tokenizer_path=tokenizer, split_method=split_method, test_fraction=test_fraction,
            validation_fraction=validation_fraction, split_column=split_column, seed=seed,
        )  # fmt: skip
        arguments = {
            "dataset_id": info.id,
            "dataset_path": info.path,
            "kind": info.kind,
            "rows": info.rows,
            "output_name": check_name(output_name or info.name),
            "options": options.model_dump(),
        }
        return await self._engine.submit(
            PREPARE_KIND, arguments, principal.name, priority=priority, idempotency_key=idempotency_key
        )


def _load_tokenizer(path: Path) -> Any:
    require_extra("train", "token counts")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
