"""Datasets: import training data, list it, and (next) inspect and prepare it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from forge_mcp.capabilities import Toolset
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.models import DatasetInfo, ImportResult
from forge_mcp.services import Services

toolset = Toolset("datasets", "Import, inspect and prepare training data as versioned, fingerprinted datasets.")

DatasetName = Annotated[str, Field(min_length=1, max_length=64, description="Lowercase name, e.g. support-chats")]


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


@toolset.capability(scope="train", title="Import a dataset")
async def dataset_import(
    services: Services,
    path: Annotated[
        str, Field(description="File or folder, relative to the workspace or absolute inside an import root")
    ],
    name: DatasetName,
    format: Annotated[
        Literal["auto", "jsonl", "json", "csv", "parquet", "hf", "text"],
        Field(description="auto: from the extension; hf = a datasets save_to_disk folder; text = .txt/.md files"),
    ] = "auto",
    kind: Annotated[
        Literal["auto", "messages", "sharegpt", "alpaca", "preference", "completion", "text"],
        Field(description="auto: detected from the rows; set it when detection is ambiguous"),
    ] = "auto",
    column_map: Annotated[
        dict[str, str] | None,
        Field(description='Rename source columns, e.g. {"question": "instruction", "answer": "output"}'),
    ] = None,
    split: Annotated[str | None, Field(max_length=64, description="For a DatasetDict folder: which split")] = None,
    max_bad_fraction: Annotated[
        float, Field(ge=0, le=1, description="Refuse the import when a larger share of lines cannot be read")
    ] = 0.1,
) -> ImportResult:
    """Imports training data from a local file or folder: JSONL, JSON, CSV, Parquet, a
    Hugging Face save_to_disk folder, or a folder of .txt/.md files (continued
    pre-training). Streams the source, skips unreadable lines (reported with their line
    numbers), detects the layout (messages, sharegpt, alpaca, preference, completion,
    text) with a confidence, and stores a new version `<name>@vN` with a content
    fingerprint. Importing identical content again returns the existing version."""
    return await services.datasets.import_(
        path,
        name,
        fmt=None if format == "auto" else format,
        kind=None if kind == "auto" else DatasetKind(kind),
        column_map=column_map,
        split=split,
        max_bad_fraction=max_bad_fraction,
    )


@toolset.capability(scope="read", title="List datasets", read_only=True)
async def dataset_list(
    services: Services,
    name: Annotated[str | None, Field(max_length=64, description="Only the versions of this dataset")] = None,
    limit: Annotated[int, Field(ge=1, le=200)] = 50,
) -> DatasetList:
    """Lists dataset versions, newest first: id (`<name>@vN`), kind, rows, fingerprint,
    lineage and where each came from. Read-only."""
    return DatasetList(datasets=await services.datasets.repo.list(name, limit))


@toolset.resource("forge://datasets/{dataset_id}", name="dataset")
async def dataset_resource(services: Services, dataset_id: str) -> DatasetInfo:
    """One dataset version's manifest: kind, rows, schema, fingerprint, source and lineage."""
    return await services.datasets.repo.get(dataset_id)
