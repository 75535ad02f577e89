"""Prepare a dataset version for training, inside a job worker: normalise to the canonical
kind, clean, handle PII, filter by length, deduplicate exactly and approximately, check the
chat template against max_length, and split. Every step counts what it dropped or changed.

The output is written to a staging folder; the server publishes it as a new version once
the job has succeeded, so a crash or cancel never leaves a half-written dataset visible.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from forge_mcp.datasets import pii
from forge_mcp.datasets.importer import DATA_FILE, canonical_json
from forge_mcp.datasets.inspect import read_rows, row_text
from forge_mcp.datasets.kinds import CANONICAL, DatasetKind, InvalidRow, to_canonical
from forge_mcp.datasets.near_dup import MinHasher, candidate_pairs, confirmed_groups
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.kinds import JobContext

PiiMode = Literal["report", "redact", "drop"]
SplitMethod = Literal["random", "stratified", "temporal"]
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Cc without \t \n \r
_BLANK_LINES = re.compile(r"\n{3,}")


class PrepareOptions(BaseModel):
    clean: bool = True
    dedup: Literal["none", "exact", "near"] = "near"
    near_threshold: float = 0.85
    pii: PiiMode = "redact"
    min_chars: int | None = None
    max_chars: int | None = None
    max_length: int | None = None
    tokenizer_path: str | None = None  # resolved by the tool; absolute here
    split_method: SplitMethod = "random"
    test_fraction: float = 0.1
    validation_fraction: float = 0.0
    split_column: str | None = None
    seed: int = 0


class StepCount(BaseModel):
    step: str
    rows_in: int
    rows_out: int
    detail: dict[str, Any] = Field(default_factory=dict)


class PrepareOutcome(BaseModel):
    staging: str  # folder name under datasets/.staging
    kind: str
    rows: int
    fingerprint: str
    steps: list[StepCount]
    splits: dict[str, int]
    pii: dict[str, int]
    truncated_at_max_length: int | None = None


def clean_text(text: str) -> str:
    """NFC, no control characters but newlines and tabs, runs of spaces collapsed, lines trimmed."""
    text = _CONTROL.sub("", unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n"))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: (map_strings(v, fn) if k in ("content", "prompt", "chosen", "rejected", "text", "messages") else v)
                for k, v in value.items()}  # fmt: skip
    return value


def prepare(job: JobContext, source: Path, kind: DatasetKind, staging: Path, options: PrepareOptions, total: int) -> PrepareOutcome:
    """Two streaming passes. The first normalises, cleans, handles PII, filters, drops exact
    duplicates, writes survivors to a scratch Parquet and keeps only what the rest needs in
    memory: a digest per row, a MinHash signature per row, and the split column. Near
    duplicates are then found from the signatures; the second pass writes the output."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    steps: list[StepCount] = []
    target = CANONICAL[kind]
    hasher = MinHasher()
    scratch = staging / "pass1.parquet"
    schema = pa.schema([("line", pa.string()), ("row", pa.string())])
    invalid: Counter[str] = Counter()
    counts = Counter()
    pii_found: Counter[str] = Counter()
    seen: set[bytes] = set()
    keys: list[Any] = []
    signatures: list[np.ndarray] = []
    batch_lines: list[str] = []
    batch_rows: list[str] = []
    batch_texts: list[str] = []
    low, high = options.min_chars or 0, options.max_chars or 10**12

    def flush(writer: Any) -> None:
        if batch_rows:
            writer.write_table(pa.table({"line": batch_lines, "row": batch_rows}, schema=schema))
            if options.dedup == "near":
                signatures.append(hasher.signatures(batch_texts))
            for batch in (batch_lines, batch_rows, batch_texts):
                batch.clear()

    with pq.ParquetWriter(scratch, schema) as writer:
        for line, raw in read_rows(source):
            counts["read"] += 1
            if counts["read"] % 10_000 == 0:
                job.progress(counts["read"], total, "normalising, cleaning, PII, exact duplicates")
                job.check_canceled()
            row = json.loads(raw)
            try:
                canonical = to_canonical(row, kind)
            except InvalidRow as exc:
                invalid[str(exc)] += 1
                continue
            if options.clean:
                canonical = map_strings(canonical, clean_text)
            if options.pii == "redact":
                found: Counter[str] = Counter()

                def redact(value: str, found: Counter[str] = found) -> str:
                    clean, counted = pii.redact(value)
                    found.update(counted)
                    return clean

                canonical = map_strings(canonical, redact)  # one pass finds and replaces
                text = row_text(canonical)
            else:
                text = row_text(canonical)
                found = pii.count(text)
                if found and options.pii == "drop":
                    counts["pii_dropped"] += 1
            pii_found.update(found)
            if options.clean and not text.strip():
                counts["emptied"] += 1
                continue
            if found and options.pii == "drop":
                continue
            if not low <= len(text) <= high:
                counts["length_dropped"] += 1
                continue
            encoded = canonical_json(canonical)
            if options.dedup != "none":
                digest = hashlib.blake2b(encoded.encode(), digest_size=16).digest()
                if digest in seen:
                    counts["exact_dropped"] += 1
                    continue
                seen.add(digest)
            batch_lines.append(line)
            batch_rows.append(encoded)
            batch_texts.append(text)
            keys.append(row.get(options.split_column) if options.split_column else None)
            if len(batch_rows) >= 4096:
                flush(writer)
        flush(writer)
    seen.clear()
    normalised = counts["read"] - sum(invalid.values())
    steps.append(StepCount(step="normalise", rows_in=counts["read"], rows_out=normalised,
                           detail={"target_kind": target.value, "invalid_by_reason": dict(invalid.most_common(10))}))  # fmt: skip
    rows_now = normalised
    if options.clean:
        steps.append(StepCount(step="clean", rows_in=rows_now, rows_out=rows_now - counts["emptied"],
                               detail={"dropped_empty": counts["emptied"]}))  # fmt: skip
        rows_now -= counts["emptied"]
    steps.append(StepCount(step=f"pii_{options.pii}", rows_in=rows_now, rows_out=rows_now - counts["pii_dropped"],
                           detail={"found": dict(pii_found), "rows_dropped": counts["pii_dropped"]}))  # fmt: skip
    rows_now -= counts["pii_dropped"]
    if options.min_chars is not None or options.max_chars is not None:
        steps.append(StepCount(step="length_filter", rows_in=rows_now, rows_out=rows_now - counts["length_dropped"],
                               detail={"min_chars": options.min_chars, "max_chars": options.max_chars}))  # fmt: skip
        rows_now -= counts["length_dropped"]
    if options.dedup != "none":
        steps.append(StepCount(step="dedup_exact", rows_in=rows_now, rows_out=rows_now - counts["exact_dropped"]))
        rows_now -= counts["exact_dropped"]
    drop: set[int] = set()
    if options.dedup == "near" and signatures:
        job.progress(counts["read"], total, "near duplicates")
        pairs = candidate_pairs(np.concatenate(signatures), options.near_threshold)
        signatures.clear()
        needed = {i for pair in pairs for i in pair}
        texts = {i: row_text(json.loads(r)) for i, (_, r) in enumerate(_scratch_rows(scratch)) if i in needed}
        groups = confirmed_groups(pairs, texts, options.near_threshold)
        drop = {i for g in groups for i in g[1:]}
        steps.append(StepCount(step="dedup_near", rows_in=rows_now, rows_out=rows_now - len(drop),
                               detail={"threshold": options.near_threshold, "groups": len(groups)}))  # fmt: skip
        rows_now -= len(drop)
    if rows_now == 0:
        raise InvalidArguments("no rows are left after preparation; loosen the filters (see the step counts in job_logs)")
    keep = [i for i in range(len(keys)) if i not in drop]
    truncated = None
    if options.max_length is not None and options.tokenizer_path is not None:
        job.progress(counts["read"], total, "checking the chat template against max_length")
        kept_rows = (json.loads(r) for i, (_, r) in enumerate(_scratch_rows(scratch)) if i not in drop)
        truncated = _count_truncated(options.tokenizer_path, kept_rows, options.max_length)
    job.progress(counts["read"], total, "splitting and writing")
    labels = assign_splits([keys[i] for i in keep], options)
    splits = Counter(labels)
    steps.append(StepCount(step=f"split_{options.split_method}", rows_in=rows_now, rows_out=rows_now,
                           detail={"seed": options.seed, **dict(splits)}))  # fmt: skip
    fingerprint = _write(staging, scratch, drop, labels)
    scratch.unlink()
    job.progress(total, total, "written")
    return PrepareOutcome(
        staging=staging.name, kind=target.value, rows=rows_now, fingerprint=fingerprint,
        steps=steps, splits=dict(splits), pii=dict(pii_found), truncated_at_max_length=truncated,
    )  # fmt: skip


def _scratch_rows(scratch: Path) -> Iterator[tuple[str, str]]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(scratch).iter_batches(batch_size=8192):
        yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)


def assign_splits(keys: list[Any], options: PrepareOptions) -> list[str]:
    """A split name per row. random: shuffled by seed; stratified: each value of the column
    in the same proportions; temporal: the newest rows (by the column) go to test."""
    n = len(keys)
    labels = ["train"] * n
    if options.split_method == "temporal":
        if options.split_column is None:
            raise InvalidArguments("split_column: a temporal split needs the column that orders the rows in time")
        order = sorted(range(n), key=lambda i: (keys[i] is None, str(keys[i])))
        _label(labels, order[::-1], options)
        return labels
    rng = random.Random(options.seed)
    if options.split_method == "stratified":
        if options.split_column is None:
            raise InvalidArguments("split_column: a stratified split needs the column whose values to balance")
        strata: dict[str, list[int]] = defaultdict(list)
        for i, key in enumerate(keys):
            strata[json.dumps(key, sort_keys=True)].append(i)
        for name in sorted(strata):
            members = strata[name]
            rng.shuffle(members)
            _label(labels, members, options)
        return labels
    order = list(range(n))
    rng.shuffle(order)
    _label(labels, order, options)
    return labels


def _label(labels: list[str], order: list[int], options: PrepareOptions) -> None:
    n = len(order)
    n_test = round(n * options.test_fraction)
    n_validation = round(n * options.validation_fraction)
    for i in order[:n_test]:
        labels[i] = "test"
    for i in order[n_test : n_test + n_validation]:
        labels[i] = "validation"


def _write(staging: Path, scratch: Path, drop: set[int], labels: list[str]) -> str:
    """Stream the survivors of the scratch file into data.parquet with their split; the
    fingerprint covers every row and its split, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("line", pa.string()), ("row", pa.string()), ("split", pa.string())])
    digest = hashlib.sha256()
    label = iter(labels)
    lines: list[str] = []
    rows: list[str] = []
    splits: list[str] = []
    with pq.ParquetWriter(staging / DATA_FILE, schema, compression="zstd") as writer:
        for index, (line, row) in enumerate(_scratch_rows(scratch)):
            if index in drop:
                continue
            split = next(label)
            digest.update(row.encode())
            digest.update(b"\t" + split.encode() + b"\n")
            lines.append(line)
            rows.append(row)
            splits.append(split)
            if len(rows) >= 8192:
                writer.write_table(pa.table({"line": lines, "row": rows, "split": splits}, schema=schema))
                lines, rows, splits = [], [], []
        if rows:
            writer.write_table(pa.table({"line": lines, "row": rows, "split": splits}, schema=schema))
    return digest.hexdigest()


def _count_truncated(tokenizer_path: str, rows: Iterable[dict[str, Any]], max_length: int) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True, trust_remote_code=False)
    over = 0
    for row in rows:
        if "messages" in row and tokenizer.chat_template:
            length = len(tokenizer.apply_chat_template(row["messages"], tokenize=True))
        else:
            length = len(tokenizer(row_text(row))["input_ids"])
        over += length > max_length
    return over
