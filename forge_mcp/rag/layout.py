"""Every path of an index, from one value: `IndexDir(<workspace>/rag, name)`.

    rag/<index>/index.json          the record: settings, the current generation, counts
    rag/<index>/<generation>/       one complete build, named by the job that made it:
        chroma/                       chromadb's PersistentClient folder (the vectors)
        lexical.sqlite3               the BM25 index (forge_mcp.rag.lexical)
        sources.json                  each file or dataset in it: content hash, chunks

A job builds the next generation in its run folder (from a copy of the current one) and the
server moves it here and rewrites index.json (atomically) when the job succeeds: a query reads
one complete generation, never one being written. The previous generation is kept until the
next build, for queries that opened it just before the switch."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from forge_mcp.rag.models import IndexInfo

RAG = "rag"  # the workspace's folder of indexes
RECORD = "index.json"
CHROMA = "chroma"
LEXICAL = "lexical.sqlite3"
SOURCES = "sources.json"
COLLECTION = "chunks"


class SourceEntry(BaseModel):
    kind: Literal["file", "dataset"]
    sha256: str  # of the file's bytes; a dataset's fingerprint
    chunks: int
    characters: int


class Generation:
    """The files of one build."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def chroma(self) -> Path:
        return self.path / CHROMA

    @property
    def lexical(self) -> Path:
        return self.path / LEXICAL

    @property
    def sources_file(self) -> Path:
        return self.path / SOURCES

    def sources(self) -> dict[str, SourceEntry]:
        if not self.sources_file.is_file():
            return {}
        return {name: SourceEntry(**entry) for name, entry in json.loads(self.sources_file.read_text()).items()}

    def write_sources(self, sources: dict[str, SourceEntry]) -> None:
        write_atomically(self.sources_file, json.dumps({k: v.model_dump() for k, v in sorted(sources.items())}))


@dataclass(frozen=True)
class IndexDir:
    rag: Path  # the workspace's rag folder
    name: str  # checked against INDEX_NAME before it gets here

    @property
    def path(self) -> Path:
        return self.rag / self.name

    @property
    def record_file(self) -> Path:
        return self.path / RECORD

    def generation(self, name: str) -> Generation:
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ValueError(f"not a generation name: {name!r}")
        return Generation(self.path / name)

    def record(self) -> IndexInfo | None:
        if not self.record_file.is_file():
            return None
        return IndexInfo.model_validate_json(self.record_file.read_text())

    def write_record(self, info: IndexInfo) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomically(self.record_file, info.model_dump_json(indent=1))


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)
