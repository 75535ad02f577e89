"""What an index is built from: the files under the given paths (each checked like every path
a client gives), or the rows of a dataset version, as (source, text) documents."""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from forge_mcp.datasets.inspect import read_rows, row_text
from forge_mcp.errors import InvalidArguments
from forge_mcp.rag.limits import MAX_FILE_BYTES, MAX_FILES
from forge_mcp.rag.models import Unreadable
from forge_mcp.workspace import Workspace


@dataclass(frozen=True)
class SourceFile:
    source: str  # as stored and shown: relative to the workspace, or the path inside an import root
    path: Path


@dataclass(frozen=True)
class FileText:
    text: str
    sha256: str


def list_files(workspace: Workspace, paths: list[str], include: list[str]) -> list[SourceFile]:
    """Every file named in `paths`, and every file under a folder there whose path (relative to
    the folder) matches an `include` pattern (fnmatch: * crosses folders too); hidden files and
    folders (.git, .venv…) are left out. Each path is resolved and its tree checked again here."""
    found: dict[str, SourceFile] = {}
    for raw in paths:
        given = workspace.resolve_tree(raw, field="paths")
        shown = workspace.shown(given)
        if given.is_file():
            found[shown] = SourceFile(shown, given)
            continue
        for relative in _walk(given):
            if any(fnmatch.fnmatchcase(relative, pattern) for pattern in include):
                source = relative if shown == "." else f"{shown}/{relative}"
                found[source] = SourceFile(source, given / relative)
                if len(found) > MAX_FILES:
                    raise InvalidArguments(f"paths: more than {MAX_FILES} files match; narrow include, or index the "
                                           "folders in several runs")  # fmt: skip
    return [found[name] for name in sorted(found)]


def _walk(folder: Path) -> Iterator[str]:
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        base = Path(root).relative_to(folder)
        for name in sorted(files):
            if not name.startswith("."):
                yield (base / name).as_posix()


def read_text(file: SourceFile) -> FileText | Unreadable:
    """The file's text and content hash, or why it was skipped."""
    try:
        size = file.path.stat().st_size
        if size > MAX_FILE_BYTES:
            return Unreadable(path=file.source, reason=f"larger than {MAX_FILE_BYTES // 1_000_000} MB")
        data = file.path.read_bytes()
    except OSError as exc:
        return Unreadable(path=file.source, reason=f"cannot be read ({exc.strerror or type(exc).__name__})")
    if b"\0" in data:
        return Unreadable(path=file.source, reason="binary (contains NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return Unreadable(path=file.source, reason=f"not UTF-8 text (byte {exc.start})")
    return FileText(text=text, sha256=hashlib.sha256(data).hexdigest())


def dataset_rows(folder: Path) -> Iterator[tuple[str, str]]:
    """(line, text) of each row of a stored dataset version: its natural-language content."""
    for line, row in read_rows(folder):
        text = row_text(json.loads(row))
        if text.strip():
            yield line, text
