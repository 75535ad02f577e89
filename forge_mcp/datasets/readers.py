"""Streaming readers, one per source format. Each yields `Record`s one at a time — a row,
or the reason a line could not be read — so no file is ever held in memory whole.

`line` is what a person would look for in the source: the line number for JSONL and
CSV, the element index for JSON, the row index for Parquet and Arrow, the file for a
folder of text files.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from forge_mcp.errors import InvalidArguments

SourceFormat = Literal["jsonl", "json", "csv", "parquet", "hf", "text"]
JSON_CHUNK = 1 << 20
TEXT_SUFFIXES = (".txt", ".md")
BATCH_ROWS = 2048


@dataclass(frozen=True)
class Record:
    line: str
    row: dict[str, Any] | None = None
    error: str | None = None


def guess_format(path: Path) -> SourceFormat:
    if path.is_dir():
        if (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        return "text"
    suffix = path.suffix.lower()
    formats: dict[str, SourceFormat] = {
        ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
        ".txt": "text", ".md": "text",
    }  # fmt: skip
    if suffix not in formats:
        raise InvalidArguments(
            f"format: cannot tell the format of a '{suffix or 'no extension'}' file; pass format= one of "
            "jsonl, json, csv, parquet, hf, text"
        )
    return formats[suffix]


def read(path: Path, fmt: SourceFormat, split: str | None = None) -> Iterator[Record]:
    if path.is_file() and path.stat().st_size == 0:
        raise InvalidArguments("path: the file is empty (0 bytes); export the data again and import that file")
    readers = {"jsonl": _jsonl, "json": _json, "csv": _csv, "parquet": _parquet, "text": _text}
    if fmt == "hf":
        return _hf(path, split)
    return readers[fmt](path)


def _lines(path: Path) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text, decode error) — a bad byte spoils only its own line."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8"), None
            except UnicodeDecodeError as exc:
                yield number, None, f"not valid UTF-8 at byte {exc.start} of the line; re-save the file as UTF-8"


def _jsonl(path: Path) -> Iterator[Record]:
    for number, text, problem in _lines(path):
        if problem:
            yield Record(str(number), error=problem)
            continue
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as exc:
            yield Record(str(number), error=f"not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield Record(str(number), error=f"a JSON {type(value).__name__}, not an object; each line must be one object")
            continue
        yield Record(str(number), value)


def _json(path: Path) -> Iterator[Record]:
    """A top-level array of objects (or {"data": [...]}) parsed element by element."""
    decoder = json.JSONDecoder()
    with path.open("r", encoding="utf-8-sig") as f:
        buffer = _read_chunk(f)
        position = _skip(buffer, 0)
        if buffer[position:position + 1] == "{" and buffer.lstrip().startswith('{"data"'):
            position = buffer.index("[", position)
        elif buffer[position:position + 1] != "[":
            raise InvalidArguments("path: a .json file must hold an array of objects (use .jsonl for one object per line)")
        position += 1
        index = 0
        while True:
            position = _skip(buffer, position, ",")
            while position >= len(buffer) - 1:
                more = _read_chunk(f)
                if not more:
                    break
                buffer, position = buffer[position:] + more, 0
                position = _skip(buffer, position, ",")
            if position >= len(buffer) or buffer[position] == "]":
                return
            while True:
                try:
                    value, end = decoder.raw_decode(buffer, position)
                    break
                except ValueError as exc:
                    more = _read_chunk(f)
                    if not more:
                        yield Record(f"element {index}", error=f"not valid JSON ({exc.msg}); the rest of the file is skipped")
                        return
                    buffer, position = buffer[position:] + more, 0
            if isinstance(value, dict):
                yield Record(f"element {index}", value)
            else:
                yield Record(f"element {index}", error=f"a JSON {type(value).__name__}, not an object")
            index += 1
            position = end


def _read_chunk(f: Any) -> str:
    try:
        return f.read(JSON_CHUNK)
    except UnicodeDecodeError as exc:
        raise InvalidArguments(f"path: the file is not valid UTF-8 (byte {exc.start} of a chunk); re-save it as UTF-8") from None


def _skip(buffer: str, position: int, extra: str = "") -> int:
    while position < len(buffer) and (buffer[position].isspace() or buffer[position] in extra):
        position += 1
    return position


def _csv(path: Path) -> Iterator[Record]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    lines = (text if text is not None else "\ufffd" for _, text, _ in _lines(path))
    bad = {n: problem for n, _, problem in _lines(path) if problem}
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise InvalidArguments("path: the CSV has no header row; its first line must name the columns")
    header = [h.strip() for h in header]
    rows = 0
    for values in reader:
        number = reader.line_num
        if number in bad:
            yield Record(str(number), error=bad[number])
            continue
        if not any(v.strip() for v in values):
            continue
        rows += 1
        if len(values) != len(header):
            yield Record(str(number), error=f"{len(values)} fields where the header has {len(header)}; check quoting")
            continue
        yield Record(str(number), {name: _cell(value) for name, value in zip(header, values, strict=True)})
    if rows == 0:
        raise InvalidArguments("path: the CSV has a header but no rows; export the data rows too")


def _cell(value: str) -> Any:
    """CSV cells are text; a cell holding a JSON list or object (a chat) is parsed."""
    stripped = value.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    return value


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        for row in batch.to_pylist():
            yield Record(f"row {index}", row)
            index += 1


def _hf(path: Path, split: str | None) -> Iterator[Record]:
    """A `datasets.save_to_disk` folder: Arrow stream files listed in state.json; for a
    DatasetDict, the split's subfolder."""
    import pyarrow as pa

    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
        chosen = split or ("train" if "train" in splits else None)
        if chosen not in splits:
            raise InvalidArguments(f"split: this dataset has splits {', '.join(splits)}; pass split= one of them")
        path = path / chosen
    state = json.loads((path / "state.json").read_text())
    index = 0
    for entry in state.get("_data_files", []):
        arrow = (path / entry["filename"]).resolve()
        if not arrow.is_relative_to(path.resolve()):
            raise InvalidArguments("path: state.json names a data file outside the dataset folder")
        with pa.memory_map(str(arrow)) as source:
            for batch in pa.ipc.open_stream(source):
                for row in batch.to_pylist():
                    yield Record(f"row {index}", row)
                    index += 1


def _text(path: Path) -> Iterator[Record]:
    """One row per .txt/.md file: {"text": ..., "source": relative path}, for continued pre-training."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES and p.is_file())
    if not files:
        raise InvalidArguments("path: the folder holds no .txt or .md files")
    for file in files:
        name = file.name if file == path else file.relative_to(path).as_posix()
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            yield Record(name, error=f"not valid UTF-8 at byte {exc.start}; re-save the file as UTF-8")
            continue
        if text.strip():
            yield Record(name, {"text": text, "source": name})
        else:
            yield Record(name, error="the file is empty")
