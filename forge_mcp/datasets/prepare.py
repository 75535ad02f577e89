"""Prepare a dataset version for training, inside a job worker: normalise to the canonical
kind, clean, handle PII, filter by length, deduplicate exactly and approximately, check the
chat template against max_length, and split. Every step counts what it dropped or changed.

The output is written to a staging folder; the server publishes it as a new version once
the job has succeeded, so a crash or cancel never leaves a half-written dataset visible.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.datasets import pii
from forge_mcp.datasets.importer import DATA_FILE, canonical_json
from forge_mcp.datasets.inspect import row_text
from forge_mcp.datasets.kinds import CANONICAL, DatasetKind, InvalidRow, to_canonical
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.context import JobContext

if TYPE_CHECKING:  # numpy loads in the job, not in the server that imports the options
    import numpy as np

PiiMode = Literal["report", "redact", "drop"]
SplitMethod = Literal["random", "stratified", "temporal"]
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u3000]{2,}|[\t\u00a0\u2000-\u200b\u3000]")  # only what changes
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Cc without \t \n \r
_BLANK_LINES = re.compile(r"\n{3,}")
PARALLEL_MIN_ROWS = 20_000  # below this, one process: starting a pool costs more than it saves


class PrepareOptions(BaseModel):
    clean: bool = True
    dedup: Literal["none", "exact", "near"] = "near"
    near_threshold: float = 0.85
    pii: PiiMode = "redact"
    min_chars: int | None = None
    max_chars: int | None = None
    max_length: int | None = None
    tokenizer_path: str | None = None  # stored as shown to clients; the job resolves and checks it before reading
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
    # Each step is guarded by a check done in C: most text is printable ASCII on one line.
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if not text.isprintable():  # control characters, tabs, line breaks or unusual spaces
        text = _SPACES.sub(" ", _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n")))
    elif "  " in text:
        text = _SPACES.sub(" ", text)
    if "\n" in text:
        text = "\n".join(line.strip(" ") for line in text.split("\n"))
        if "\n\n\n" in text:
            text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: (map_strings(v, fn) if k in ("content", "prompt", "chosen", "rejected", "completion", "text", "messages") else v)
                for k, v in value.items()}  # fmt: skip
    return value


def prepare(
    job: JobContext, source: Path, kind: DatasetKind, staging: Path, options: PrepareOptions, total: int,
    workers: int | None = None,
) -> PrepareOutcome:  # fmt: skip
    """Two streaming passes. The first normalises, cleans, handles PII and filters each row
    group of the source — in parallel processes for large datasets — writing survivors to
    scratch Parquet shards and keeping only what the rest needs in memory: a digest, a
    MinHash signature and the split key per row. Exact and near duplicates are then found
    from those; the second pass writes the output."""
    import numpy as np

    from forge_mcp.datasets.near_dup import candidate_pairs, confirmed_groups

    groups = _row_groups(source)
    shards = staging / "pass1"
    shards.mkdir(exist_ok=True)
    tasks = [(source / DATA_FILE, g, kind, options, shards / f"{g:06d}.parquet") for g in range(groups)]
    target = CANONICAL[kind]
    counts: Counter[str] = Counter()
    invalid: Counter[str] = Counter()
    pii_found: Counter[str] = Counter()
    seen: set[bytes] = set()
    alive: list[np.ndarray] = []  # per shard: which rows survive exact dedup
    keys: list[Any] = []
    signatures: list[np.ndarray] = []
    for chunk in _map(first_pass, tasks, _worker_count(workers, total, groups)):
        counts.update(chunk.counts)
        invalid.update(chunk.invalid)
        pii_found.update(chunk.pii)
        unique = np.ones(len(chunk.digests), dtype=bool)
        for i, digest in enumerate(chunk.digests):
            if options.dedup != "none" and digest in seen:
                unique[i] = False
            seen.add(digest)
        alive.append(unique)
        keys.extend(k for k, u in zip(chunk.keys, unique, strict=True) if u)
        if chunk.signatures is not None:
            signatures.append(chunk.signatures[unique])
        job.progress(counts["read"], total, "normalising, cleaning, PII, exact duplicates")
        job.check_canceled()
    seen.clear()
    counts["exact_dropped"] = sum(int((~a).sum()) for a in alive)
    steps = _first_pass_steps(counts, invalid, pii_found, target, options)
    rows_now = steps[-1].rows_out
    drop: set[int] = set()  # positions among the rows that survived exact dedup
    if options.dedup == "near" and signatures:
        job.progress(counts["read"], total, "near duplicates")
        pairs = candidate_pairs(np.concatenate(signatures), options.near_threshold)
        signatures.clear()
        needed = {i for pair in pairs for i in pair}
        texts = {i: row_text(json.loads(r)) for i, (_, r) in enumerate(_scratch_rows(shards, alive)) if i in needed}
        groups_found = confirmed_groups(pairs, texts, options.near_threshold)
        drop = {i for g in groups_found for i in g[1:]}
        steps.append(StepCount(step="dedup_near", rows_in=rows_now, rows_out=rows_now - len(drop),
                               detail={"threshold": options.near_threshold, "groups": len(groups_found)}))  # fmt: skip
        rows_now -= len(drop)
    if rows_now == 0:
        raise InvalidArguments("no rows are left after preparation; loosen the filters (see the step counts in job_logs)")
    keep = [i for i in range(len(keys)) if i not in drop]
    truncated = None
    if options.max_length is not None and options.tokenizer_path is not None:
        job.progress(counts["read"], total, "checking the chat template against max_length")
        kept_rows = (json.loads(r) for i, (_, r) in enumerate(_scratch_rows(shards, alive)) if i not in drop)
        truncated = _count_truncated(options.tokenizer_path, kept_rows, options.max_length)
    job.progress(counts["read"], total, "splitting and writing")
    labels = assign_splits([keys[i] for i in keep], options)
    splits = Counter(labels)
    steps.append(StepCount(step=f"split_{options.split_method}", rows_in=rows_now, rows_out=rows_now,
                           detail={"seed": options.seed, **dict(splits)}))  # fmt: skip
    fingerprint = _write(staging, _scratch_rows(shards, alive), drop, labels)
    shutil.rmtree(shards)
    job.progress(total, total, "written")
    return PrepareOutcome(
        staging=staging.name, kind=target.value, rows=rows_now, fingerprint=fingerprint,
        steps=steps, splits=dict(splits), pii=dict(pii_found), truncated_at_max_length=truncated,
    )  # fmt: skip


@dataclass
class FirstPass:
    """What the first pass keeps of one row group: counts, and per surviving row its digest,
    split key and signature; the rows themselves are in the shard."""

    counts: Counter[str]
    invalid: Counter[str]
    pii: Counter[str]
    digests: list[bytes]
    keys: list[Any]
    signatures: np.ndarray | None


def first_pass(data_file: Path, row_group: int, kind: DatasetKind, options: PrepareOptions, shard: Path) -> FirstPass:
    """Normalise, clean, handle PII and filter one row group; runs in a pool process."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.ParquetFile(data_file).read_row_group(row_group, columns=["line", "row"])
    counts: Counter[str] = Counter(read=table.num_rows)
    invalid: Counter[str] = Counter()
    pii_found: Counter[str] = Counter()
    low, high = options.min_chars or 0, options.max_chars or 10**12
    lines: list[str] = []
    rows: list[str] = []
    texts: list[str] = []
    keys: list[Any] = []
    found: Counter[str] = Counter()

    def fix(value: str) -> str:
        value = clean_text(value) if options.clean else value
        if options.pii == "redact":
            value, counted = pii.redact(value)  # one pass finds and replaces
            found.update(counted)
        return value

    transform = fix if options.clean or options.pii == "redact" else None
    for line, raw in zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True):
        row = json.loads(raw)
        try:
            canonical = to_canonical(row, kind)
        except InvalidRow as exc:
            invalid[str(exc)] += 1
            continue
        found.clear()
        if transform is not None:
            canonical = map_strings(canonical, transform)
        text = row_text(canonical)
        if options.pii != "redact":
            found.update(pii.count(text))
        pii_found.update(found)
        if options.clean and not text.strip():
            counts["emptied"] += 1
            continue
        if found and options.pii == "drop":
            counts["pii_dropped"] += 1
            continue
        if not low <= len(text) <= high:
            counts["length_dropped"] += 1
            continue
        lines.append(line)
        rows.append(canonical_json(canonical))
        texts.append(text)
        keys.append(row.get(options.split_column) if options.split_column else None)
    schema = pa.schema([("line", pa.string()), ("row", pa.string())])
    pq.write_table(pa.table({"line": lines, "row": rows}, schema=schema), shard, compression="none")
    return FirstPass(
        counts=counts, invalid=invalid, pii=pii_found,
        digests=[hashlib.blake2b(r.encode(), digest_size=16).digest() for r in rows], keys=keys,
        signatures=_near_dup_signatures(texts) if options.dedup == "near" else None,
    )  # fmt: skip


def _near_dup_signatures(texts: list[str]) -> np.ndarray:
    from forge_mcp.datasets.near_dup import MinHasher

    return MinHasher().signatures(texts)


def _first_pass_steps(
    counts: Counter[str], invalid: Counter[str], pii_found: Counter[str], target: DatasetKind, options: PrepareOptions
) -> list[StepCount]:  # fmt: skip
    normalised = counts["read"] - sum(invalid.values())
    steps = [StepCount(step="normalise", rows_in=counts["read"], rows_out=normalised,
                       detail={"target_kind": target.value, "invalid_by_reason": dict(invalid.most_common(10))})]  # fmt: skip
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
    return steps


def _row_groups(source: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(source / DATA_FILE).num_row_groups


def _worker_count(requested: int | None, rows: int, groups: int) -> int:
    if requested is not None:
        return max(1, min(requested, groups))
    if rows < PARALLEL_MIN_ROWS:
        return 1  # starting processes costs more than it saves
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, groups))


def _map(fn: Callable[..., FirstPass], tasks: list[tuple[Any, ...]], workers: int) -> Iterator[FirstPass]:
    """fn over tasks, results in task order: in this process, or in a pool of fresh ones."""
    if workers == 1:
        yield from (fn(*task) for task in tasks)
        return
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the job worker has threads, and a forked lock would never be released.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield from pool.map(fn, *zip(*tasks, strict=True))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _scratch_rows(shards: Path, alive: list[np.ndarray]) -> Iterator[tuple[str, str]]:
    """(line, row) of every first-pass survivor that is not an exact duplicate, in order."""
    import pyarrow.parquet as pq

    for shard, unique in zip(sorted(shards.iterdir()), alive, strict=True):
        table = pq.read_table(shard)
        lines, rows = table.column(0).to_pylist(), table.column(1).to_pylist()
        yield from ((line, row) for line, row, u in zip(lines, rows, unique, strict=True) if u)


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


def _write(staging: Path, survivors: Iterator[tuple[str, str]], drop: set[int], labels: list[str]) -> str:
    """Stream the survivors of the first pass into data.parquet with their split; the
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
        for index, (line, row) in enumerate(survivors):
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
