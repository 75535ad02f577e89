"""Rows that are read but do not fit the detected kind are not rows of the dataset: the
import skips them and lists each with its line (or row) number and the reason, beside the
unreadable lines, in source order."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.errors import InvalidArguments


def sharegpt(i: int) -> str:
    return json.dumps({"conversations": [{"from": "human", "value": f"Hi {i}"}, {"from": "gpt", "value": f"Hello {i}!"}]})


# The five bad lines of issue 11: two that do not parse, three that parse but are not ShareGPT.
BAD = {
    4: "{not json",
    8: json.dumps({"conversations": "should be a list"}),
    12: json.dumps({"conversations": []}),
    15: "{}",
    19: '{"conversations": [',
}


def sharegpt_file(path: Path, lines: int = 50, bad: dict[int, str] = BAD) -> Path:  # noqa: B006
    path.write_text("".join((bad.get(n) or sharegpt(n)) + "\n" for n in range(1, lines + 1)))
    return path


async def test_five_bad_sharegpt_lines_are_all_reported_and_not_counted(app: ForgeApp) -> None:
    sharegpt_file(app.workspace.root / "chats.jsonl")
    result = await app.datasets.import_("chats.jsonl", "chats")
    assert result.dataset.kind == "sharegpt" and result.detection.confidence == round(45 / 48, 4)  # of the rows read
    assert (result.dataset.rows, result.rows_read, result.bad_lines, result.unfit_rows) == (45, 45, 2, 3)
    assert [b.line for b in result.bad_line_examples] == ["4", "8", "12", "15", "19"]
    reasons = {b.line: b.reason for b in result.bad_line_examples}
    assert reasons["4"].startswith("not valid JSON") and reasons["19"].startswith("not valid JSON")
    for line in ("8", "12", "15"):
        assert reasons[line] == "does not fit sharegpt: 'conversations' must be a non-empty list of {from, value} turns"
    folder = app.workspace.root / result.dataset.path
    stored = pq.read_table(folder / "data.parquet").to_pylist()
    assert len(stored) == 45 and not {r["line"] for r in stored} & {str(n) for n in BAD}
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"] == 45 and manifest["source"]["unfit_rows"] == 3 and manifest["source"]["bad_lines"] == 2
    assert manifest["steps"][0] == {"step": "import", "rows_in": 50, "rows_out": 45, "dropped_unreadable": 2, "dropped_unfit": 3}


async def test_unfit_rows_count_against_max_bad_fraction(app: ForgeApp) -> None:
    sharegpt_file(app.workspace.root / "few.jsonl", lines=20)
    with pytest.raises(InvalidArguments) as refused:
        await app.datasets.import_("few.jsonl", "few")
    message = refused.value.message
    assert "5 of 20 lines could not be read or do not fit the sharegpt layout" in message
    assert "line 4: not valid JSON" in message and "line 8: does not fit sharegpt" in message
    accepted = await app.datasets.import_("few.jsonl", "few", max_bad_fraction=0.5)
    assert accepted.dataset.rows == 15 and accepted.unfit_rows == 3


async def test_rows_after_the_detection_sample_are_checked_too(app: ForgeApp) -> None:
    """The kind is decided on the first 1000 rows; a bad row after them is caught the same way."""
    sharegpt_file(app.workspace.root / "long.jsonl", lines=1200, bad={3: "{}", 1100: json.dumps({"conversations": [1]})})
    result = await app.datasets.import_("long.jsonl", "long")
    assert result.dataset.rows == 1198 and result.unfit_rows == 2
    assert [(b.line, b.reason) for b in result.bad_line_examples] == [
        ("3", "does not fit sharegpt: 'conversations' must be a non-empty list of {from, value} turns"),
        ("1100", "does not fit sharegpt: 'conversations[0]' must have 'from' (human, gpt, system…) and a string 'value'"),
    ]


async def test_the_listing_is_capped_and_the_count_is_complete(app: ForgeApp) -> None:
    sharegpt_file(app.workspace.root / "many.jsonl", lines=1000, bad={n: "{}" for n in range(500, 560)})
    result = await app.datasets.import_("many.jsonl", "many")
    assert result.unfit_rows == 60 and result.dataset.rows == 940
    assert len(result.bad_line_examples) == 50 and result.bad_line_examples[-1].line == "549"


@pytest.mark.parametrize(
    ("kind", "good", "bad", "reason"),
    [
        ("messages", {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
         {"messages": [{"role": "user", "content": "q"}]}, "does not fit messages: 'messages' has no assistant turn to learn from"),
        ("alpaca", {"instruction": "q", "output": "a"}, {"instruction": "q", "output": 3},
         "does not fit alpaca: 'output' must be a string"),
        ("preference", {"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"},
         "does not fit preference: 'rejected' is missing"),
        ("text", {"text": "some words"}, {"text": "   "}, "does not fit text: 'text' is empty"),
    ],
)  # fmt: skip
async def test_every_kind_reports_its_unfit_rows(app: ForgeApp, kind: str, good: dict, bad: dict, reason: str) -> None:
    rows = [good] * 9 + [bad] + [good] * 10
    (app.workspace.root / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = await app.datasets.import_("d.jsonl", "d")
    assert result.dataset.kind == kind and result.dataset.rows == 19 and result.unfit_rows == 1
    assert [(b.line, b.reason) for b in result.bad_line_examples] == [("10", reason)]


async def test_non_line_formats_name_the_row_and_a_given_kind_is_checked(app: ForgeApp) -> None:
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(12)]
    rows[7] = {"prompt": "q7", "completion": None}
    pq.write_table(pa.Table.from_pylist(rows), app.workspace.root / "d.parquet")
    result = await app.datasets.import_("d.parquet", "d", kind=DatasetKind.COMPLETION)
    assert result.dataset.rows == 11
    assert [(b.line, b.reason) for b in result.bad_line_examples] == [("row 7", "does not fit completion: 'completion' must be a string")]
