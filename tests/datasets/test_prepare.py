"""Preparation steps: cleaning, splits that are deterministic per seed and keep stratified
proportions, and a first pass that gives the same version in one process or a pool."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from forge_mcp.datasets.importer import canonical_json
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.prepare import PrepareOptions, PrepareOutcome, assign_splits, clean_text, map_strings, prepare
from forge_mcp.errors import InvalidArguments
from tests.job_context import job_context


def test_clean_text_normalises_unicode_and_whitespace() -> None:
    assert clean_text("  Cafe\u0301\u00a0 au\tlait \x07\r\n\n\n\nnext  line ") == "Café au lait\n\nnext line"
    assert clean_text("\x00\x01  ") == ""


def test_map_strings_touches_content_not_roles() -> None:
    row = {"messages": [{"role": "user", "content": " hi "}, {"role": "assistant", "content": "yo", "tool_calls": [{"id": " x "}]}]}
    assert map_strings(row, str.strip) == {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "tool_calls": [{"id": " x "}]}]
    }


def test_random_split_is_deterministic_per_seed() -> None:
    keys = [None] * 1000
    options = PrepareOptions(test_fraction=0.1, validation_fraction=0.05, seed=3)
    first, again = assign_splits(keys, options), assign_splits(keys, options)
    other = assign_splits(keys, options.model_copy(update={"seed": 4}))
    assert first == again and first != other
    assert Counter(first) == {"train": 850, "test": 100, "validation": 50}


def test_stratified_split_keeps_each_value_in_proportion() -> None:
    keys = ["billing"] * 600 + ["shipping"] * 300 + ["refund"] * 100
    labels = assign_splits(keys, PrepareOptions(split_method="stratified", split_column="topic", test_fraction=0.2))
    for topic, total in (("billing", 600), ("shipping", 300), ("refund", 100)):
        in_test = sum(1 for k, s in zip(keys, labels, strict=True) if k == topic and s == "test")
        assert in_test == total // 5, topic


def test_temporal_split_puts_the_newest_rows_in_test() -> None:
    keys = [f"2024-01-{day:02d}" for day in range(1, 31)]
    labels = assign_splits(keys, PrepareOptions(split_method="temporal", split_column="date", test_fraction=0.1))
    assert [k for k, s in zip(keys, labels, strict=True) if s == "test"] == ["2024-01-28", "2024-01-29", "2024-01-30"]


def test_split_methods_that_need_a_column_say_so() -> None:
    with pytest.raises(InvalidArguments, match="split_column: a temporal split needs"):
        assign_splits([1, 2], PrepareOptions(split_method="temporal"))


def stored_dataset(folder: Path, rows: list[dict], row_group_rows: int) -> Path:
    """A dataset folder as dataset_import leaves it: data.parquet of (line, canonical JSON)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    table = pa.table({"line": [str(i + 1) for i in range(len(rows))], "row": [canonical_json(r) for r in rows]})
    pq.write_table(table, folder / "data.parquet", row_group_size=row_group_rows)
    return folder


def chats(n: int) -> list[dict]:
    rng = random.Random(5)
    words = "order parcel refund late card account reset login help thanks week today".split()
    rows = []
    for i in range(n):
        if i % 50 == 49:
            rows.append(rows[i - 10])  # exact duplicate
            continue
        answer = " ".join(rng.choice(words) for _ in range(40))
        if i % 50 == 48:
            answer = rows[i - 20]["messages"][1]["content"].replace(" ", "  ", 1) + " ok"  # near duplicate
        question = f"Question {i}: " + (f" email me at a{i}@example.com" if i % 30 == 0 else "where is it?")
        rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]})
    return rows


def run_prepare(tmp_path: Path, source: Path, name: str, workers: int) -> PrepareOutcome:
    job = job_context(tmp_path / "runs" / name, workspace=tmp_path)
    job.run.output.mkdir()
    return prepare(job, source, DatasetKind.MESSAGES, job.run.output, PrepareOptions(), 3000, workers=workers)


def test_parallel_first_pass_gives_the_same_version_as_one_process(tmp_path: Path) -> None:
    source = stored_dataset(tmp_path / "source", chats(3000), row_group_rows=400)
    alone = run_prepare(tmp_path, source, "alone", workers=1)
    pooled = run_prepare(tmp_path, source, "pooled", workers=2)
    assert pooled.fingerprint == alone.fingerprint
    assert pooled.steps == alone.steps and pooled.splits == alone.splits and pooled.pii == alone.pii == {"email": 100}
    steps = {s.step: s for s in alone.steps}
    assert steps["dedup_exact"].rows_in - steps["dedup_exact"].rows_out == 60
    assert steps["dedup_near"].rows_in - steps["dedup_near"].rows_out == 60
    assert not (tmp_path / "pooled" / "output" / "pass1").exists()  # scratch shards are gone
