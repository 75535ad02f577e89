"""Import: stream a source into a staged Parquet folder, fingerprint it, detect its kind,
then publish it as a new version — or recognise it as one that already exists.

Publishing is a rename of a complete folder followed by the index row, so a crash or a
refusal never leaves a half-written dataset visible: leftovers in datasets/.staging are
removed at the next start.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from pydantic import BaseModel

from forge_mcp.datasets.kinds import DatasetKind, Detection, InvalidRow, detect, to_canonical
from forge_mcp.datasets.models import BadLine, DatasetInfo, FieldSummary, ImportResult
from forge_mcp.datasets.readers import BATCH_ROWS, Record, SourceFormat, guess_format, read
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.references import check_name
from forge_mcp.workspace import Workspace

DATA_FILE = "data.parquet"
MANIFEST = "manifest.json"
STAGING = ".staging"
DETECTION_SAMPLE = 1000
BAD_LINE_EXAMPLES = 50
SCHEMA_FIELDS_MAX = 200


def canonical_json(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Staged:
    folder: Path
    rows: int = 0
    bad: int = 0  # unreadable lines
    unfit: int = 0  # rows that were read but do not fit the kind
    bad_examples: list[BadLine] = field(default_factory=list)
    fingerprint: str = ""
    detection: Detection | None = None  # None when no row could be read
    fields: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def skip(self, line: str, reason: str) -> None:
        if len(self.bad_examples) < BAD_LINE_EXAMPLES:
            self.bad_examples.append(BadLine(line=line, reason=reason))


def stage(source: Path, fmt: SourceFormat, split: str | None, column_map: dict[str, str], folder: Path,
          kind: DatasetKind | None) -> Staged:  # fmt: skip
    """Stream `source` into folder/data.parquet as (line, row-as-canonical-JSON); runs in a thread.

    The kind is decided on the first DETECTION_SAMPLE readable rows (held back until then),
    and every row is checked against it: a row that does not fit is skipped and reported
    by its line, like an unreadable one, so the dataset's rows are all rows of its kind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("line", pa.string()), ("row", pa.string())])
    staged = Staged(folder=folder)
    digest = hashlib.sha256()
    lines: list[str] = []
    rows: list[str] = []
    with pq.ParquetWriter(folder / DATA_FILE, schema, compression="zstd") as writer:
        for record, row in _decided(read(source, fmt, split), column_map, staged, kind):
            if row is None:
                staged.bad += 1
                staged.skip(record.line, record.error or "empty")
                continue
            assert staged.detection is not None and staged.detection.kind is not None
            try:
                to_canonical(row, staged.detection.kind)
            except InvalidRow as exc:
                staged.unfit += 1
                staged.skip(record.line, f"does not fit {staged.detection.kind.value}: {exc}")
                continue
            text = canonical_json(row)
            digest.update(text.encode())
            digest.update(b"\n")
            lines.append(record.line)
            rows.append(text)
            staged.rows += 1
            for key, value in row.items():
                if key in staged.fields or len(staged.fields) < SCHEMA_FIELDS_MAX:
                    staged.fields[key][_json_type(value)] += 1
            if len(rows) >= BATCH_ROWS:
                writer.write_table(pa.table({"line": lines, "row": rows}, schema=schema))
                lines, rows = [], []
        if rows:
            writer.write_table(pa.table({"line": lines, "row": rows}, schema=schema))
    staged.fingerprint = digest.hexdigest()
    return staged


def _decided(
    records: Iterator[Record], column_map: dict[str, str], staged: Staged, kind: DatasetKind | None
) -> Iterator[tuple[Record, dict[str, Any] | None]]:
    """(record, row with column_map applied, or None when unreadable), in source order; the
    first records are held back until the detection sample is full and staged.detection set."""
    held: list[tuple[Record, dict[str, Any] | None]] = []
    sample: list[dict[str, Any]] = []
    for record in records:
        row = None
        if record.error is None and record.row is not None:
            row = {column_map.get(k, k): v for k, v in record.row.items()} if column_map else record.row
        if staged.detection is not None:
            yield record, row
            continue
        held.append((record, row))
        if row is not None:
            sample.append(row)
            if len(sample) >= DETECTION_SAMPLE:
                staged.detection = _decide_kind(sample, kind)
                yield from held
                held.clear()
    if staged.detection is None and held:
        if sample:
            staged.detection = _decide_kind(sample, kind)
        yield from held


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


class DatasetImporter:
    def __init__(self, workspace: Workspace, repository: DatasetRepository) -> None:
        self.workspace = workspace
        self.repo = repository
        self.root = workspace.root / "datasets"
        self._publish = asyncio.Lock()

    def clean_staging(self) -> None:
        """Remove what interrupted imports left behind (never visible to anyone). Folders are
        named after the importing process, so another live process's import is left alone."""
        staging = self.root / STAGING
        if not staging.is_dir():
            return
        for folder in staging.iterdir():
            owner = folder.name.split("-", 1)[0]
            if not (owner.isdigit() and psutil.pid_exists(int(owner))):
                shutil.rmtree(folder, ignore_errors=True)

    async def import_(
        self,
        path: str,
        name: str,
        *,
        fmt: SourceFormat | None = None,
        kind: DatasetKind | None = None,
        column_map: dict[str, str] | None = None,
        split: str | None = None,
        max_bad_fraction: float = 0.1,
    ) -> ImportResult:
        check_name(name)
        source = self.workspace.resolve(path, field="path")
        if not source.exists():
            raise InvalidArguments("path: nothing exists there; check the path (relative to the workspace or an import root)")
        # A folder's own entries (text files, Arrow files) can be links out even when the folder is not.
        await asyncio.to_thread(self.workspace.check_tree, source, field="path")
        fmt = fmt or guess_format(source)
        folder = self.workspace.writable(self.root / STAGING) / f"{os.getpid()}-{uuid.uuid4().hex}"
        folder.mkdir(parents=True)
        try:
            staged = await asyncio.to_thread(stage, source, fmt, split, column_map or {}, folder, kind)
            if staged.rows == 0 or staged.detection is None:
                raise InvalidArguments(f"path: no row could be read ({_examples(staged)})")
            detection = staged.detection
            read_total = staged.rows + staged.bad + staged.unfit
            if (staged.bad + staged.unfit) / read_total > max_bad_fraction:
                raise InvalidArguments(
                    f"path: {staged.bad + staged.unfit} of {read_total} lines could not be read or do not fit the "
                    f"{detection.kind} layout, more than max_bad_fraction ({max_bad_fraction:g}); first: "
                    f"{_examples(staged)}. Fix those lines, pass kind or column_map if the layout is wrong, or raise "
                    "max_bad_fraction to import the good rows only"
                )
            async with self._publish:
                existing = await self.repo.find_content(name, staged.fingerprint)
                if existing is not None:
                    return _result(existing, True, detection, staged)
                version = await self.repo.next_version(name)
                info = await self._publish_version(name, version, staged, detection, source, fmt)
            return _result(info, False, detection, staged)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def publish_prepared(
        self, name: str, parent_id: str, folder: Path, fingerprint: str, kind: str, rows: int,
        steps: list[dict[str, Any]], report: dict[str, Any],
    ) -> PublishedDataset:  # fmt: skip
        """Publish a prepared folder (a job's output) as the next version of `name`."""
        parent = await self.repo.get(parent_id)
        return await self.publish_output(
            name, folder, fingerprint, kind, rows, [*parent.steps, *steps], report,
            {"prepared_from": parent.id, "parent_fingerprint": parent.fingerprint}, parent_id=parent.id, job="dataset_prepare",
        )  # fmt: skip

    async def publish_output(
        self, name: str, folder: Path, fingerprint: str, kind: str, rows: int, steps: list[dict[str, Any]],
        report: dict[str, Any], source: dict[str, Any], *, parent_id: str | None = None, job: str,
    ) -> PublishedDataset:  # fmt: skip
        """Publish a job's output folder of canonical rows with their split (what prepare writes)
        as the next version of `name`, with `source` as its lineage; `job` names the tool that made it."""
        check_name(name)
        async with self._publish:
            # Checked before the folder: a publication cut off after its index row (the server
            # died before the job was marked SUCCEEDED) is found here when the job is settled again.
            existing = await self.repo.find_content(name, fingerprint)
            if existing is not None:
                return PublishedDataset(dataset=existing, deduplicated=True)
            if not (folder / DATA_FILE).exists():
                raise InvalidArguments(f"the output of {job} for {name} is missing; run {job} again")
            version = await self.repo.next_version(name)
            values = {
                "id": f"{name}@v{version}", "name": name, "version": version, "fingerprint": fingerprint,
                "kind": kind, "kind_confidence": 1.0, "rows": rows,
                "schema": [{"name": key, "rows": rows, "types": {_FIELD_TYPES.get(key, "string"): rows}}
                           for key in _canonical_fields(kind)] + [{"name": "split", "rows": rows, "types": {"string": rows}}],
                "source": source, "parent_id": parent_id, "steps": steps, "report": report, "created_at": time.time(),
            }  # fmt: skip
            return PublishedDataset(dataset=await self._place(folder, values), deduplicated=False)

    async def _place(self, folder: Path, values: dict[str, Any]) -> DatasetInfo:
        """Manifest into the complete folder, rename it into place, then the index row."""
        (folder / MANIFEST).write_text(json.dumps(values, indent=2))
        target = self.workspace.writable(self.root / values["name"] / f"v{values['version']}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # versions come from the index, so a folder it does not list is a leftover
            shutil.rmtree(target)
        folder.rename(target)
        try:
            return await self.repo.insert(values)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    async def _publish_version(
        self, name: str, version: int, staged: Staged, detection: Detection, source: Path, fmt: SourceFormat
    ) -> DatasetInfo:
        assert detection.kind is not None
        schema = [
            FieldSummary(name=key, rows=sum(types.values()), types=dict(types)).model_dump()
            for key, types in staged.fields.items()
        ]
        values = {
            "id": f"{name}@v{version}",
            "name": name,
            "version": version,
            "fingerprint": staged.fingerprint,
            "kind": detection.kind.value,
            "kind_confidence": detection.confidence,
            "rows": staged.rows,
            "schema": schema,
            "source": {
                "format": fmt,
                "path": self.workspace.shown(source),
                "bytes": _size(source),
                "bad_lines": staged.bad,
                "unfit_rows": staged.unfit,
            },
            "steps": [{"step": "import", "rows_in": staged.rows + staged.bad + staged.unfit, "rows_out": staged.rows,
                       "dropped_unreadable": staged.bad, "dropped_unfit": staged.unfit}],  # fmt: skip
            "report": {"detection": detection.model_dump(), "bad_line_examples": [b.model_dump() for b in staged.bad_examples]},
            "created_at": time.time(),
        }
        return await self._place(staged.folder, values)


class PublishedDataset(BaseModel):
    dataset: DatasetInfo
    deduplicated: bool


def _decide_kind(sample: list[dict[str, Any]], kind: DatasetKind | None) -> Detection:
    detection = detect(sample)
    if kind is not None:
        return detection.model_copy(update={"kind": kind, "confidence": detection.scores[kind.value], "ambiguous": False})
    if detection.kind is None:
        fields = ", ".join(list(dict.fromkeys(k for row in sample for k in row))[:12]) or "none"
        raise InvalidArguments(
            f"kind: no known layout fits these rows (fields seen: {fields}). Pass column_map to rename columns, e.g. "
            '{"question": "instruction", "answer": "output"} for alpaca or {"body": "text"} for text, or pass kind'
        )
    return detection


_FIELD_TYPES = {"messages": "array", "label": "boolean"}


def _canonical_fields(kind: str) -> list[str]:
    return {"messages": ["messages"], "preference": ["prompt", "chosen", "rejected"], "labeled": ["prompt", "completion", "label"],
            "text": ["text"]}[kind]  # fmt: skip


def _examples(staged: Staged) -> str:
    return "; ".join(f"line {b.line}: {b.reason}" for b in staged.bad_examples[:3]) or "the source is empty"


def _result(info: DatasetInfo, deduplicated: bool, detection: Detection, staged: Staged) -> ImportResult:
    return ImportResult(
        dataset=info,
        deduplicated=deduplicated,
        detection=detection,
        rows_read=staged.rows,
        bad_lines=staged.bad,
        unfit_rows=staged.unfit,
        bad_line_examples=staged.bad_examples,
    )


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
