"""Readers stream every source format, report unreadable lines with where and why, and
refuse sources that hold nothing usable with a message that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forge_mcp.datasets import readers
from forge_mcp.datasets.readers import guess_format, read
from forge_mcp.errors import InvalidArguments

ROWS = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(5)]


def collect(path: Path, fmt: str | None = None, split: str | None = None) -> tuple[list[dict], list[tuple[str, str]]]:
    good, bad = [], []
    for record in read(path, fmt or guess_format(path), split):
        if record.error:
            bad.append((record.line, record.error))
        else:
            good.append(record.row)
    return good, bad


def test_jsonl_skips_and_reports_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [json.dumps(ROWS[0]), "{broken", "", json.dumps([1, 2]), json.dumps(ROWS[1])]
    path.write_bytes(("\n".join(lines) + "\n").encode() + b'{"instruction": "caf\xe9", "output": "x"}\n')
    good, bad = collect(path)
    assert good == ROWS[:2]
    assert bad[0][0] == "2" and "not valid JSON" in bad[0][1]
    assert bad[1][0] == "4" and "a JSON list, not an object" in bad[1][1]
    assert bad[2][0] == "6" and "not valid UTF-8" in bad[2][1] and "re-save the file as UTF-8" in bad[2][1]


def test_jsonl_with_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS[0]).encode() + b"\n")
    assert collect(path) == ([ROWS[0]], [])


@pytest.mark.parametrize("chunk", [7, 64, 1 << 20])
def test_json_array_streams_element_by_element(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(readers, "JSON_CHUNK", chunk)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS[:3] + ["not an object"] + ROWS[3:], indent=2))
    good, bad = collect(path)
    assert good == ROWS
    assert bad == [("element 3", "a JSON str, not an object")]


def test_json_data_wrapper_and_bad_top_level(tmp_path: Path) -> None:
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"data": ROWS}))
    assert collect(wrapped)[0] == ROWS
    scalar = tmp_path / "s.json"
    scalar.write_text('"just a string"')
    with pytest.raises(InvalidArguments, match="must hold an array of objects"):
        collect(scalar)


def test_csv_parses_json_cells_and_reports_ragged_rows(tmp_path: Path) -> None:
    path = tmp_path / "chats.csv"
    chat = json.dumps([{"role": "user", "content": "hi, there"}, {"role": "assistant", "content": "hello"}])
    path.write_text('id,messages\n1,"' + chat.replace('"', '""') + '"\n2,"x",extra\n\n3,"multi\nline"\n')
    good, bad = collect(path)
    assert good[0] == {"id": "1", "messages": json.loads(chat)}
    assert good[1] == {"id": "3", "messages": "multi\nline"}
    assert bad == [("3", "3 fields where the header has 2; check quoting")]


def test_csv_with_a_header_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("instruction,output\n")
    with pytest.raises(InvalidArguments, match="the CSV has a header but no rows"):
        collect(path)


def test_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"")
    with pytest.raises(InvalidArguments, match="the file is empty \\(0 bytes\\)"):
        collect(path)


def test_parquet_streams_batches(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS * 1000), path, row_group_size=700)
    good, bad = collect(path)
    assert len(good) == 5000 and good[7] == ROWS[2] and bad == []


def save_to_disk(folder: Path, rows: list[dict]) -> None:
    """The layout `datasets.Dataset.save_to_disk` writes: Arrow stream files listed in state.json."""
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(rows)
    with pa.OSFile(str(folder / "data-00000-of-00001.arrow"), "wb") as sink:
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (folder / "state.json").write_text(json.dumps({"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}))
    (folder / "dataset_info.json").write_text("{}")


def test_hf_save_to_disk_folder_and_dataset_dict(tmp_path: Path) -> None:
    single = tmp_path / "single"
    save_to_disk(single, ROWS)
    assert guess_format(single) == "hf" and collect(single)[0] == ROWS
    both = tmp_path / "dict"
    save_to_disk(both / "train", ROWS[:3])
    save_to_disk(both / "test", ROWS[3:])
    (both / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    assert collect(both)[0] == ROWS[:3]
    assert collect(both, split="test")[0] == ROWS[3:]
    with pytest.raises(InvalidArguments, match="split: this dataset has splits train, test"):
        collect(both, split="validation")


def test_text_folder_makes_one_row_per_file(tmp_path: Path) -> None:
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Alpha text.")
    (folder / "sub" / "b.md").write_text("# Beta")
    (folder / "empty.txt").write_text("  ")
    (folder / "ignored.bin").write_bytes(b"\x00")
    good, bad = collect(folder)
    assert good == [{"text": "Alpha text.", "source": "a.txt"}, {"text": "# Beta", "source": "sub/b.md"}]
    assert bad == [("empty.txt", "the file is empty")]


def test_unknown_extension_asks_for_a_format(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK")
    with pytest.raises(InvalidArguments, match="pass format= one of jsonl, json, csv, parquet, hf, text"):
        guess_format(path)
