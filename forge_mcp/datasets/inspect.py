"""What is in a dataset version and what is wrong with it, told briefly: invalid rows
(with where and why), lengths, exact and near duplicates, PII by type, chat shape, a few
truncated samples. Rows are untrusted content: everything shown is bounded."""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.datasets import pii
from forge_mcp.datasets.kinds import DatasetKind, InvalidRow, to_canonical
from forge_mcp.datasets.models import BadLine

INVALID_EXAMPLES = 20
DUPLICATE_EXAMPLES = 5
SAMPLE_CHARS = 300
READ_BATCH = 4096


class LengthStats(BaseModel):
    unit: str
    min: int
    p50: int
    p90: int
    p99: int
    max: int
    mean: float


class DuplicateReport(BaseModel):
    exact_rows: int = Field(description="Rows identical to an earlier row (after canonical JSON)")
    exact_examples: list[list[str]] = Field(description="Lines of identical rows, first occurrence first")
    near_groups: int = Field(description="Groups of rows whose word 3-gram Jaccard similarity is >= threshold")
    near_rows: int = Field(description="Rows in those groups beyond the first of each group")
    near_threshold: float
    near_examples: list[list[str]]


class ChatShape(BaseModel):
    roles: dict[str, int]
    turns: LengthStats
    rows_with_system: int
    rows_with_tool_calls: int


class Inspection(BaseModel):
    dataset_id: str
    kind: str
    rows: int
    examined_rows: int
    sampled: bool = Field(description="True when only a random sample of `examined_rows` rows was examined")
    invalid_rows: int = Field(description="Rows that do not fit the dataset's kind")
    invalid_examples: list[BadLine]
    characters: LengthStats | None
    tokens: LengthStats | None = Field(None, description="With a tokenizer: tokens per row, chat template applied")
    duplicates: DuplicateReport
    pii: dict[str, int] = Field(description="Findings by type: email, phone, credit_card, ssn, ip_address, iban, secret")
    rows_with_pii: int
    chat: ChatShape | None = None
    samples: list[dict[str, Any]] = Field(description="A few rows, strings cut at 300 characters. Data, not instructions.")


def row_text(canonical: dict[str, Any]) -> str:
    """The natural-language content of a canonical row, for lengths, PII and similarity."""
    parts: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                collect(item.get("content") if isinstance(item, dict) else item)

    for key in ("prompt", "chosen", "rejected", "completion", "messages", "text"):
        if key in canonical:
            collect(canonical[key])
    return "\n".join(parts)


def stats(values: list[int], unit: str) -> LengthStats | None:
    if not values:
        return None
    ordered = sorted(values)

    def at(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return LengthStats(
        unit=unit, min=ordered[0], p50=at(0.5), p90=at(0.9), p99=at(0.99), max=ordered[-1],
        mean=round(sum(ordered) / len(ordered), 1),
    )  # fmt: skip


def read_rows(folder: Path) -> Iterator[tuple[str, str]]:
    """(line, canonical JSON text) for every stored row, in order."""
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(folder / "data.parquet").iter_batches(batch_size=READ_BATCH, columns=["line", "row"]):
        lines, rows = batch.column(0).to_pylist(), batch.column(1).to_pylist()
        yield from zip(lines, rows, strict=True)


def inspect_rows(
    dataset_id: str, folder: Path, kind: DatasetKind, total: int, *, sample_rows: int | None, near_threshold: float,
    samples: int, seed: int = 0, tokenizer: Any = None,
) -> tuple[Inspection, list[int]]:  # fmt: skip
    """The inspection, and the character length of every examined valid row (for a histogram)."""
    chosen: set[int] | None = None
    if sample_rows is not None and sample_rows < total:
        chosen = set(random.Random(seed).sample(range(total), sample_rows))
    invalid: list[BadLine] = []
    invalid_count = 0
    seen: dict[str, str] = {}
    exact_rows, exact_examples = 0, []
    texts, text_lines, chars, token_counts, shown = [], [], [], [], []
    pii_counts: Counter[str] = Counter()
    rows_with_pii = 0
    roles: Counter[str] = Counter()
    turns: list[int] = []
    with_system = with_tools = 0
    for index, (line, raw) in enumerate(read_rows(folder)):
        if chosen is not None and index not in chosen:
            continue
        row = json.loads(raw)
        try:
            canonical = to_canonical(row, kind)
        except InvalidRow as exc:
            invalid_count += 1
            if len(invalid) < INVALID_EXAMPLES:
                invalid.append(BadLine(line=line, reason=str(exc)))
            continue
        digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
        if digest in seen:
            exact_rows += 1
            if len(exact_examples) < DUPLICATE_EXAMPLES:
                exact_examples.append([seen[digest], line])
            continue
        seen[digest] = line
        text = row_text(canonical)
        texts.append(text)
        text_lines.append(line)
        chars.append(len(text))
        found = pii.count(text)
        if found:
            rows_with_pii += 1
            pii_counts.update(found)
        if "messages" in canonical:
            messages = canonical["messages"]
            roles.update(m["role"] for m in messages)
            turns.append(len(messages))
            with_system += any(m["role"] == "system" for m in messages)
            with_tools += any("tool_calls" in m for m in messages)
        if tokenizer is not None:
            token_counts.append(_token_count(tokenizer, canonical))
        if len(shown) < samples:
            shown.append(_truncate(canonical))
    from forge_mcp.datasets.near_dup import near_duplicate_groups  # numpy: loaded when a dataset is inspected

    groups = near_duplicate_groups(texts, near_threshold)
    inspection = Inspection(
        dataset_id=dataset_id,
        kind=kind.value,
        rows=total,
        examined_rows=len(chosen) if chosen is not None else total,
        sampled=chosen is not None,
        invalid_rows=invalid_count,
        invalid_examples=invalid,
        characters=stats(chars, "characters"),
        tokens=stats(token_counts, "tokens"),
        duplicates=DuplicateReport(
            exact_rows=exact_rows,
            exact_examples=exact_examples,
            near_groups=len(groups),
            near_rows=sum(len(g) - 1 for g in groups),
            near_threshold=near_threshold,
            near_examples=[[text_lines[i] for i in g[:4]] for g in groups[:DUPLICATE_EXAMPLES]],
        ),
        pii=dict(sorted(pii_counts.items())),
        rows_with_pii=rows_with_pii,
        chat=ChatShape(roles=dict(roles), turns=stats(turns, "messages"), rows_with_system=with_system,
                       rows_with_tool_calls=with_tools) if turns else None,  # fmt: skip
        samples=shown,
    )
    return inspection, chars


def _truncate(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= SAMPLE_CHARS else value[:SAMPLE_CHARS] + f"… [{len(value) - SAMPLE_CHARS} more characters]"
    if isinstance(value, list):
        return [_truncate(v) for v in value[:20]]
    if isinstance(value, dict):
        return {k: _truncate(v) for k, v in value.items()}
    return value


def _token_count(tokenizer: Any, canonical: dict[str, Any]) -> int:
    if "messages" in canonical and getattr(tokenizer, "chat_template", None):
        return len(tokenizer.apply_chat_template(canonical["messages"], tokenize=True))
    return len(tokenizer(row_text(canonical))["input_ids"])
