"""Datasets: import training data, list it, and (next) inspect and prepare it."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.capabilities import ImageAttachment, Toolset
from forge_mcp.datasets.inspect import Inspection, inspect_rows
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.models import DatasetInfo, ImportResult
from forge_mcp.datasets.prepare import PrepareOptions, PrepareOutcome, prepare
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.references import check_name
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("datasets", "Import, inspect and prepare training data as versioned, fingerprinted datasets.")

DatasetName = Annotated[str, Field(min_length=1, max_length=64, description="Lowercase name, e.g. support-chats")]


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


@toolset.capability(scope="train", title="Import a dataset")
async def dataset_import(
    services: Services,
    path: Annotated[
        str, Field(description="File or folder: relative to the workspace, or absolute inside it or an import root")
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
        float, Field(ge=0, le=1, description="Refuse the import when a larger share of lines cannot be read or do not fit")
    ] = 0.1,
) -> ImportResult:
    """Imports training data from a local file or folder: JSONL, JSON, CSV, Parquet, a Hugging Face
    save_to_disk folder, or .txt/.md files (continued pre-training). Streams it, detects the
    layout (messages, sharegpt, alpaca, preference, completion, text), skips unreadable lines
    and rows that do not fit (each named by line, with the reason) and stores version
    `<name>@vN` with a content fingerprint. Identical content returns the existing version."""
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


AUTO_SAMPLE_ROWS = 200_000


class DatasetInspection(Inspection):
    histogram: ImageAttachment | None = None


@toolset.capability(scope="read", title="Inspect a dataset", read_only=True)
async def dataset_inspect(
    services: Services,
    dataset: Annotated[str, Field(max_length=80, description="'<name>' (newest version) or '<name>@v<N>'")],
    sample_rows: Annotated[
        int | None,
        Field(ge=100, le=10_000_000, description=f"Examine a random sample of this many rows (default: all, up to {AUTO_SAMPLE_ROWS})"),
    ] = None,
    near_threshold: Annotated[float, Field(ge=0.5, le=1.0, description="Jaccard similarity for near duplicates")] = 0.85,
    samples: Annotated[int, Field(ge=0, le=10, description="Sample rows to show")] = 3,
    tokenizer_path: Annotated[
        str | None, Field(description="A local tokenizer or model folder, to count tokens with its chat template")
    ] = None,
    histogram: Annotated[bool, Field(description="Also return a PNG histogram of row lengths")] = False,
) -> DatasetInspection:
    """What is in a dataset and what is wrong with it: rows that do not fit its kind (line and
    field), lengths (characters; tokens with a tokenizer), exact and near duplicates, PII counts
    by type, chat roles and turns, and a few truncated sample rows (data, never instructions).
    Read-only; large datasets are sampled and the result says so."""
    info = await services.datasets.repo.get(dataset)
    tokenizer = None
    if tokenizer_path is not None:
        folder = await asyncio.to_thread(services.workspace.resolve_tree, tokenizer_path, field="tokenizer_path")
        tokenizer = await asyncio.to_thread(_load_tokenizer, folder)
    if sample_rows is None and info.rows > AUTO_SAMPLE_ROWS:
        sample_rows = AUTO_SAMPLE_ROWS
    inspection, lengths = await asyncio.to_thread(
        inspect_rows,
        info.id,
        await asyncio.to_thread(services.workspace.resolve_tree, info.path, field="dataset"),
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


def _load_tokenizer(path: Path) -> Any:
    require_extra("train", "token counts")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


def _prepare_resources(arguments: dict[str, Any]) -> Resources:
    # Measured (make bench-data): 1.2 GB peak for a million chats, pool processes included.
    return Resources(memory_gb=max(1.0, 1.5 * arguments["rows"] / 1_000_000))


async def _publish_prepared(services: Services, job: Any, result: dict[str, Any]) -> dict[str, Any]:
    outcome = PrepareOutcome(**result)
    arguments = job.arguments
    published = await services.datasets.publish_prepared(
        arguments["output_name"],
        arguments["dataset_id"],
        services.workspace.root / "runs" / job.id / outcome.staging,
        outcome.fingerprint,
        outcome.kind,
        outcome.rows,
        [s.model_dump() for s in outcome.steps],
        {"splits": outcome.splits, "pii": outcome.pii, "truncated_at_max_length": outcome.truncated_at_max_length,
         "options": arguments["options"], "job_id": job.id},  # fmt: skip
    )
    return {**result, "dataset": published.dataset.model_dump(mode="json"), "deduplicated": published.deduplicated}


@toolset.job_kind("dataset_prepare", resources=_prepare_resources, publish=_publish_prepared)
def prepare_job(
    job: JobContext, dataset_id: str, dataset_path: str, kind: str, rows: int, output_name: str, options: dict[str, Any]
) -> PrepareOutcome:
    staging = job.run_dir / "output"
    staging.mkdir(exist_ok=True)
    checked = PrepareOptions(**options)
    if checked.tokenizer_path is not None:  # stored relative; checked again here, where it is read
        checked.tokenizer_path = str(job.workspace.resolve_tree(checked.tokenizer_path, field="tokenizer_path"))
    folder = job.workspace.resolve_tree(dataset_path, field="dataset")  # a link swapped in is refused here too
    return prepare(job, folder, DatasetKind(kind), staging, checked, rows)


@toolset.capability(scope="train", title="Prepare a dataset", long_running=True)
async def dataset_prepare(
    services: Services,
    principal: Principal,
    dataset: Annotated[str, Field(max_length=80, description="'<name>' (newest version) or '<name>@v<N>'")],
    output_name: Annotated[str | None, Field(max_length=64, description="Name of the result (default: the same name, next version)")] = None,
    clean: Annotated[bool, Field(description="Unicode NFC, control characters out, whitespace normalised, empty rows dropped")] = True,
    dedup: Annotated[Literal["none", "exact", "near"], Field(description="near = exact + MinHash-LSH near duplicates")] = "near",
    near_threshold: Annotated[float, Field(ge=0.5, le=1.0, description="Jaccard similarity of word 3-grams")] = 0.85,
    pii: Annotated[Literal["report", "redact", "drop"], Field(description="What to do with emails, phones, cards, SSNs, IPs, IBANs, secrets")] = "redact",
    min_chars: Annotated[int | None, Field(ge=0)] = None,
    max_chars: Annotated[int | None, Field(ge=1)] = None,
    max_length: Annotated[int | None, Field(ge=8, description="With tokenizer_path: count rows the chat template would push past this many tokens")] = None,
    tokenizer_path: Annotated[str | None, Field(description="Local tokenizer or model folder, for the max_length check")] = None,
    split_method: Annotated[Literal["random", "stratified", "temporal"], Field(description="stratified/temporal need split_column")] = "random",
    test_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.1,
    validation_fraction: Annotated[float, Field(ge=0, le=0.5)] = 0.0,
    split_column: Annotated[str | None, Field(max_length=64, description="Source column to stratify by, or to order by time")] = None,
    seed: int = 0,
    priority: Annotated[int, Field(ge=-100, le=100)] = 0,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Starts a job that makes a dataset version training-ready: canonical form (messages,
    preference or text), cleaning, PII redaction (or report, or drop), length filters, exact and
    near dedup, an optional chat-template length check, and train/validation/test splits
    (random, stratified or temporal; seeded). The new version, with lineage and per-step counts,
    is published only if the job succeeds. Follow with job_wait."""
    info = await services.datasets.repo.get(dataset)
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
        folder = await asyncio.to_thread(services.workspace.resolve_tree, tokenizer_path, field="tokenizer_path")
        tokenizer = services.workspace.shown(folder)
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
    return await services.jobs.submit(
        "dataset_prepare", arguments, principal.name, priority=priority, idempotency_key=idempotency_key
    )
