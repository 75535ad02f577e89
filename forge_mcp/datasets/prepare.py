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
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.datasets import pii
from forge_mcp.datasets.importer import DATA_FILE, canonical_json
from forge_mcp.datasets.inspect import read_rows, row_text
from forge_mcp.datasets.kinds import CANONICAL, DatasetKind, InvalidRow, to_canonical
from forge_mcp.datasets.near_dup import near_duplicate_groups
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.kinds import JobContext

PiiMode = Literal["report", "redact", "drop"]
SplitMethod = Literal["random", "stratified", "temporal"]
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]+")
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
    text = unicodedata.normalize("NFC", text)
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
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
    steps: list[StepCount] = []
    target = CANONICAL[kind]
    # 1. normalise (and clean, and PII) row by row: one pass over the source
    kept: list[tuple[str, dict[str, Any], Any]] = []  # (line, canonical row, split key value)
    invalid: Counter[str] = Counter()
    emptied = 0
    pii_found: Counter[str] = Counter()
    pii_dropped = 0
    read = 0
    for line, raw in read_rows(source):
        read += 1
        if read % 10_000 == 0:
            job.progress(read, total, "normalising and cleaning")
            job.check_canceled()
        row = json.loads(raw)
        try:
            canonical = to_canonical(row, kind)
        except InvalidRow as exc:
            invalid[str(exc)] += 1
            continue
        if options.clean:
            canonical = map_strings(canonical, clean_text)
            if not row_text(canonical).strip():
                emptied += 1
                continue
        text = row_text(canonical)
        found = pii.count(text)
        if found:
            pii_found.update(found)
            if options.pii == "drop":
                pii_dropped += 1
                continue
            if options.pii == "redact":
                canonical = map_strings(canonical, lambda s: pii.redact(s)[0])
        kept.append((line, canonical, row.get(options.split_column) if options.split_column else None))
    steps.append(StepCount(step="normalise", rows_in=read, rows_out=read - sum(invalid.values()),
                           detail={"target_kind": target.value, "invalid_by_reason": dict(invalid.most_common(10))}))  # fmt: skip
    if options.clean:
        steps.append(StepCount(step="clean", rows_in=steps[-1].rows_out, rows_out=steps[-1].rows_out - emptied,
                               detail={"dropped_empty": emptied}))  # fmt: skip
    steps.append(StepCount(step=f"pii_{options.pii}", rows_in=steps[-1].rows_out, rows_out=len(kept),
                           detail={"found": dict(pii_found), "rows_dropped": pii_dropped}))  # fmt: skip
    # 2. length filter
    if options.min_chars is not None or options.max_chars is not None:
        before = len(kept)
        low, high = options.min_chars or 0, options.max_chars or 10**12
        kept = [k for k in kept if low <= len(row_text(k[1])) <= high]
        steps.append(StepCount(step="length_filter", rows_in=before, rows_out=len(kept),
                               detail={"min_chars": options.min_chars, "max_chars": options.max_chars}))  # fmt: skip
    # 3. deduplicate
    job.progress(read, total, "deduplicating")
    if options.dedup != "none":
        before = len(kept)
        seen: set[str] = set()
        unique = []
        for item in kept:
            digest = hashlib.sha256(canonical_json(item[1]).encode()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                unique.append(item)
        kept = unique
        steps.append(StepCount(step="dedup_exact", rows_in=before, rows_out=len(kept)))
    if options.dedup == "near":
        before = len(kept)
        groups = near_duplicate_groups([row_text(k[1]) for k in kept], options.near_threshold)
        drop = {i for g in groups for i in g[1:]}
        kept = [k for i, k in enumerate(kept) if i not in drop]
        steps.append(StepCount(step="dedup_near", rows_in=before, rows_out=len(kept),
                               detail={"threshold": options.near_threshold, "groups": len(groups)}))  # fmt: skip
    if not kept:
        raise InvalidArguments("no rows are left after preparation; loosen the filters (see the step counts in job_logs)")
    # 4. chat-template check
    truncated = None
    if options.max_length is not None and options.tokenizer_path is not None:
        job.progress(read, total, "checking the chat template against max_length")
        truncated = _count_truncated(options.tokenizer_path, [k[1] for k in kept], options.max_length)
    # 5. split
    job.progress(read, total, "splitting")
    labels = assign_splits([k[2] for k in kept], options)
    splits = Counter(labels)
    steps.append(StepCount(step=f"split_{options.split_method}", rows_in=len(kept), rows_out=len(kept),
                           detail={"seed": options.seed, **dict(splits)}))  # fmt: skip
    fingerprint = _write(staging, kept, labels)
    job.progress(total, total, "written")
    return PrepareOutcome(
        staging=staging.name, kind=target.value, rows=len(kept), fingerprint=fingerprint,
        steps=steps, splits=dict(splits), pii=dict(pii_found), truncated_at_max_length=truncated,
    )  # fmt: skip


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


def _write(staging: Path, kept: list[tuple[str, dict[str, Any], Any]], labels: list[str]) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq

    digest = hashlib.sha256()
    rows = []
    for (_, row, _), label in zip(kept, labels, strict=True):
        text = canonical_json(row)
        digest.update(text.encode())
        digest.update(b"\t" + label.encode() + b"\n")
        rows.append(text)
    table = pa.table({"line": [k[0] for k in kept], "row": rows, "split": labels})
    pq.write_table(table, staging / DATA_FILE, compression="zstd")
    return digest.hexdigest()


def _count_truncated(tokenizer_path: str, rows: list[dict[str, Any]], max_length: int) -> int:
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
