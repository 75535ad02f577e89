"""A rag_index build, in its worker: compare what the paths (or the dataset) hold now with the
current generation's sources by content hash, then make the next generation in the run folder
from a copy of the current one: the chunks of changed and removed sources deleted, those of new
and changed sources chunked, embedded (the model loaded once for the build) and added.
Unchanged sources are not read twice, chunked or embedded. Nothing changed: no new generation."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forge_mcp.errors import Conflict, InvalidArguments
from forge_mcp.jobs.context import JobContext
from forge_mcp.rag.chunking import Chunk, chunk_text
from forge_mcp.rag.encoder import LocalEncoder, ModelFiles
from forge_mcp.rag.layout import RAG, Generation, IndexDir, SourceEntry
from forge_mcp.rag.lexical import LexicalIndex
from forge_mcp.rag.limits import CHROMA_BATCH, MAX_UNREADABLE_SHOWN
from forge_mcp.rag.models import IndexOutcome, IndexSettings, Unreadable
from forge_mcp.rag.sources import FileText, dataset_rows, list_files, read_text
from forge_mcp.rag.vectors import Vectors
from forge_mcp.workspace import Workspace

STAGED = "index"  # the next generation, under the run's output folder until it is published


@dataclass(frozen=True)
class DatasetSource:
    id: str  # '<name>@v<N>': the source name of its chunks
    name: str
    path: str
    fingerprint: str


@dataclass
class Plan:
    """What changes, source by source."""

    texts: dict[str, FileText] = field(default_factory=dict)  # new or changed files
    dataset: DatasetSource | None = None  # a new or changed dataset version
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)  # sources gone: their chunks go
    replaced: list[str] = field(default_factory=list)  # sources changed: their old chunks go, new ones come
    unreadable: list[Unreadable] = field(default_factory=list)
    files_seen: int = 0

    @property
    def changes(self) -> bool:
        return bool(self.texts or self.dataset or self.removed)


@dataclass(frozen=True)
class Request:
    index: str
    paths: list[str]
    include: list[str]
    dataset: DatasetSource | None
    settings: IndexSettings


def staged(output: Path) -> Path:
    return output / STAGED


def build(job: JobContext, request: Request) -> IndexOutcome:
    started = time.monotonic()
    workspace = job.workspace
    folder = IndexDir(workspace.root / RAG, request.index)
    record = folder.record()
    if record is not None and IndexSettings(**record.model_dump(include=set(IndexSettings.model_fields))) != request.settings:
        raise Conflict(f"index {request.index} was created meanwhile with other settings "
                       f"({record.embedding_model}, {record.chunk_chars}/{record.overlap_chars}); run rag_index again")  # fmt: skip
    base = folder.generation(record.generation) if record is not None and record.generation else None
    previous = base.sources() if base is not None else {}
    plan = _plan(workspace, request, previous)
    job.log(f"{plan.files_seen} files seen: {len(plan.texts)} new or changed, {plan.unchanged} unchanged, "
            f"{len(plan.removed)} removed, {len(plan.unreadable)} unreadable")  # fmt: skip
    common = {"index": request.index, "files_seen": plan.files_seen, "files_unchanged": plan.unchanged,
              "files_removed": len(plan.removed), "unreadable": plan.unreadable[:MAX_UNREADABLE_SHOWN],
              "previous_generation": base.path.name if base is not None else None}  # fmt: skip
    if not plan.changes:
        if base is None:
            raise InvalidArguments("paths: no readable file matches (see include); nothing to index")
        total = sum(entry.chunks for entry in previous.values())
        return IndexOutcome(**common, generation=None, files_indexed=0, chunks_added=0, chunks_removed=0,
                            chunks_total=total, sources_total=len(previous), truncated_chunks=0,
                            dimensions=record.dimensions if record else None,
                            seconds=round(time.monotonic() - started, 3))  # fmt: skip
    target = Generation(staged(job.run.output))
    if target.path.exists():  # a retry's leftovers
        shutil.rmtree(target.path)
    copy_generation(base, target)
    encoder = LocalEncoder(_model_files(workspace, request.settings))
    if record is not None and record.dimensions not in (None, encoder.dimensions):
        raise Conflict(f"embedding_model: {request.settings.embedding_model} now gives {encoder.dimensions} "
                       f"dimensions, the index holds {record.dimensions}; build a new index")  # fmt: skip
    sources = dict(previous)
    added, removed = _apply(job, target, request, plan, encoder, sources)
    target.write_sources(sources)
    return IndexOutcome(**common, generation=job.job_id, files_indexed=len(plan.texts), chunks_added=added,
                        chunks_removed=removed, chunks_total=sum(e.chunks for e in sources.values()),
                        sources_total=len(sources), truncated_chunks=encoder.truncated, dimensions=encoder.dimensions,
                        seconds=round(time.monotonic() - started, 3))  # fmt: skip


def _plan(workspace: Workspace, request: Request, previous: dict[str, SourceEntry]) -> Plan:
    plan = Plan()
    files = list_files(workspace, request.paths, request.include)
    plan.files_seen = len(files)
    present = set()
    for file in files:
        read = read_text(file)
        if isinstance(read, Unreadable):
            plan.unreadable.append(read)
            continue
        present.add(file.source)
        entry = previous.get(file.source)
        if entry is not None and entry.sha256 == read.sha256:
            plan.unchanged += 1
            continue
        plan.texts[file.source] = read
        if entry is not None:
            plan.replaced.append(file.source)
    # A file indexed before from under a given path that is no longer there (or no longer matches) goes.
    scopes = [workspace.shown(workspace.resolve(raw, field="paths")) for raw in request.paths]
    plan.removed += [source for source, entry in previous.items() if entry.kind == "file" and source not in present
                     and any(_under(source, scope) for scope in scopes)]  # fmt: skip
    dataset = request.dataset
    if dataset is not None:
        entry = previous.get(dataset.id)
        if entry is not None and entry.sha256 == dataset.fingerprint:
            plan.unchanged += 1
        else:
            plan.dataset = dataset
            plan.replaced += [dataset.id] if entry is not None else []
            # An older version of the same dataset is superseded by this one.
            plan.removed += [source for source, e in previous.items() if e.kind == "dataset" and source != dataset.id
                             and source.startswith(f"{dataset.name}@v")]  # fmt: skip
    return plan


def _under(source: str, scope: str) -> bool:
    return scope == "." and not source.startswith("/") or source == scope or source.startswith(f"{scope}/")


def _model_files(workspace: Workspace, settings: IndexSettings) -> ModelFiles:
    """Checked again here, where the model is read: a link in it may have changed since submission."""
    model = workspace.resolve_tree(settings.model_path, field="embedding_model")
    adapter = settings.adapter_path and workspace.resolve_tree(settings.adapter_path, field="embedding_model")
    return ModelFiles(model, adapter or None)


@dataclass
class _Pending:
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    metadata: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def append(self, source: str, chunk: Chunk, row: str | None = None) -> None:
        self.ids.append(chunk_id(source, chunk.number))
        self.texts.append(chunk.text)
        meta: dict[str, Any] = {"source": source, "chunk": chunk.number, "start": chunk.start, "end": chunk.end}
        if row is not None:
            meta["row"] = row
        self.metadata.append(meta)
        self.sources.append(source)


def chunk_id(source: str, number: int) -> str:
    return f"{hashlib.sha256(source.encode()).hexdigest()[:24]}-{number}"


def _apply(job: JobContext, target: Generation, request: Request, plan: Plan, encoder: LocalEncoder,
           sources: dict[str, SourceEntry]) -> tuple[int, int]:  # fmt: skip
    """(chunks added, chunks removed); the target generation and `sources` updated in place."""
    size, overlap = request.settings.chunk_chars, request.settings.overlap_chars
    pending = _Pending()
    removed = sum(sources.pop(source).chunks for source in [*plan.removed, *plan.replaced])
    for source, read in plan.texts.items():
        chunks = chunk_text(read.text, size, overlap)
        for chunk in chunks:
            pending.append(source, chunk)
        sources[source] = SourceEntry(kind="file", sha256=read.sha256, chunks=len(chunks), characters=len(read.text))
    if plan.dataset is not None:
        dataset = plan.dataset
        folder = job.workspace.resolve_tree(dataset.path, field="dataset")
        count = characters = 0
        for line, text in dataset_rows(folder):
            for chunk in chunk_text(text, size, overlap, first_number=count):
                pending.append(dataset.id, chunk, row=line)
                count += 1
            characters += len(text)
        sources[dataset.id] = SourceEntry(kind="dataset", sha256=dataset.fingerprint, chunks=count, characters=characters)
    total = len(pending.ids)
    with Vectors(target.chroma, request.settings.embedding_model, encoder.embed) as vectors, \
            LexicalIndex(target.lexical) as lexical:  # fmt: skip
        for source in [*plan.removed, *plan.replaced]:
            vectors.remove_source(source)
            lexical.remove_source(source)
        for first in range(0, total, CHROMA_BATCH):
            job.check_canceled()
            last = min(first + CHROMA_BATCH, total)
            texts = pending.texts[first:last]
            embedded = encoder.embed(texts, progress=lambda done, first=first: job.progress(
                first + done, total, f"embedding chunk {first + done} of {total}"))  # fmt: skip
            vectors.add(pending.ids[first:last], embedded, texts, pending.metadata[first:last])
            lexical.add(zip(pending.ids[first:last], pending.sources[first:last], texts, strict=True))
    return total, removed


def copy_generation(base: Generation | None, target: Generation) -> None:
    """A consistent copy of `base` (queries may have it open): sqlite files through sqlite's
    backup, chromadb's segment folders (written only by a build) as files."""
    target.path.mkdir(parents=True)
    if base is None:
        return
    shutil.copytree(base.chroma, target.chroma, ignore=shutil.ignore_patterns("*.sqlite3*"))
    for source in [*base.chroma.glob("*.sqlite3"), base.lexical]:
        _backup(source, target.path / source.relative_to(base.path))
    shutil.copy2(base.sources_file, target.sources_file)


def _backup(source: Path, destination: Path) -> None:
    reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    writer = sqlite3.connect(destination)
    try:
        reader.backup(writer)
    finally:
        writer.close()
        reader.close()
