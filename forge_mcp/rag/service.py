"""RAG for a caller: start a job that indexes files or a dataset (every refusal before anything
is queued), query an index in the call, list indexes. Indexes are the workspace's, shared like
models and prompts: building one needs the train scope, reading one read."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.extras import require_extra
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.jobs.states import JobState
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.rag.chunking import check_chunking
from forge_mcp.rag.encoder import EncoderCache, ModelFiles
from forge_mcp.rag.layout import RAG, IndexDir
from forge_mcp.rag.limits import (
    DEFAULT_CHUNK_CHARS,
    DEFAULT_INCLUDE,
    DEFAULT_OVERLAP_CHARS,
    INDEX_NAME,
    MODEL_REFERENCE,
)
from forge_mcp.rag.models import IndexInfo, IndexList, IndexSettings, QueryMode, QueryResult
from forge_mcp.rag.search import search
from forge_mcp.security.principal import Principal
from forge_mcp.workspace import Workspace

INDEX_KIND = "rag_index"
ACTIVE = (JobState.QUEUED, JobState.RUNNING)
WEIGHTS = ("*.safetensors", "*.bin")


class RagService:
    def __init__(self, workspace: Workspace, datasets: DatasetRepository, models: ModelRegistry, engine: JobEngine,
                 encoders: EncoderCache) -> None:  # fmt: skip
        self._workspace = workspace
        self._datasets = datasets
        self._models = models
        self._engine = engine
        self._encoders = encoders

    @property
    def _root(self) -> Path:
        return self._workspace.root / RAG

    async def index(
        self,
        principal: Principal,
        index: str,
        *,
        paths: list[str] | None = None,
        dataset: str | None = None,
        embedding_model: str | None = None,
        chunk_chars: int | None = None,
        overlap_chars: int | None = None,
        include: list[str] | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Checks everything it can (names, paths, the model, the index's settings) and starts the
        job as `principal`'s."""
        require_extra("rag", "rag_index")
        folder = self._folder(index)
        if not paths and dataset is None:
            raise InvalidArguments("paths or dataset: give files or folders to index, a dataset version, or both")
        shown = [self._workspace.shown(await asyncio.to_thread(self._workspace.resolve_tree, raw, field="paths"))
                 for raw in paths or []]  # fmt: skip
        record = await asyncio.to_thread(folder.record)
        settings, weight_bytes = await self._settings(index, record, embedding_model, chunk_chars, overlap_chars)
        source = None
        if dataset is not None:
            info = await self._datasets.get(dataset)
            source = {"id": info.id, "name": info.name, "path": info.path, "fingerprint": info.fingerprint}
        await self._refuse_concurrent(index, principal)
        arguments = {"index": index, "paths": shown, "include": list(include or DEFAULT_INCLUDE), "dataset": source,
                     "settings": settings.model_dump(), "weight_bytes": weight_bytes}  # fmt: skip
        return await self._engine.submit(INDEX_KIND, arguments, principal.name, priority=priority,
                                         idempotency_key=idempotency_key)  # fmt: skip

    async def query(
        self, index: str, query: str, *, k: int = 5, mode: QueryMode = "hybrid", embedding_model: str | None = None
    ) -> QueryResult:
        """The top-k chunks of the index's current build; the query is embedded with the index's model."""
        require_extra("rag", "rag_query")
        record = await self.get(index)
        if embedding_model is not None and await self._label(embedding_model) != record.embedding_model:
            raise InvalidArguments(f"embedding_model: index {index} was embedded with {record.embedding_model}; "
                                   "query it with that model (leave embedding_model out), or build another index "
                                   "with rag_index")  # fmt: skip
        if not query.strip():
            raise InvalidArguments("query: give the question or words to search for")
        vector = None
        if mode != "lexical":
            files = await asyncio.to_thread(self._model_files, record)
            vector = (await asyncio.to_thread(self._encoders.embed, files, [query]))[0]
        generation = self._folder(index).generation(str(record.generation))
        hits, total = await asyncio.to_thread(search, generation, record.embedding_model, query, vector, k, mode)
        return QueryResult(index=index, mode=mode, embedding_model=record.embedding_model, chunks_in_index=total,
                           hits=hits)  # fmt: skip

    async def list(self) -> IndexList:
        return IndexList(indexes=await asyncio.to_thread(self._records))

    async def get(self, index: str) -> IndexInfo:
        record = await asyncio.to_thread(self._folder(index).record)
        if record is None or record.generation is None:
            known = [info.index for info in await asyncio.to_thread(self._records)]
            raise NotFound(f"index: there is no index {index!r}; "
                           + (f"the indexes are {', '.join(known)}" if known else "build one with rag_index"))  # fmt: skip
        return record

    def _records(self) -> list[IndexInfo]:
        if not self._root.is_dir():
            return []
        found = (IndexDir(self._root, entry.name).record() for entry in sorted(self._root.iterdir()) if entry.is_dir())
        return [record for record in found if record is not None]

    def _folder(self, index: str) -> IndexDir:
        if not isinstance(index, str) or not re.fullmatch(INDEX_NAME, index):
            raise InvalidArguments("index: use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit")
        return IndexDir(self._root, index)

    async def _settings(self, index: str, record: IndexInfo | None, embedding_model: str | None, chunk_chars: int | None,
                        overlap_chars: int | None) -> tuple[IndexSettings, int]:  # fmt: skip
        """The index's settings: a new index's from the arguments (and defaults); an existing one's
        are its own, and arguments that differ are refused naming them."""
        given = embedding_model if embedding_model is not None else record.embedding_model if record else None
        if given is None:
            raise InvalidArguments("embedding_model: a new index needs one: a local model folder (an encoder, or a "
                                   "language model) or a registered version '<name>@v<N>'")  # fmt: skip
        size = chunk_chars if chunk_chars is not None else record.chunk_chars if record else DEFAULT_CHUNK_CHARS
        overlap = overlap_chars if overlap_chars is not None else record.overlap_chars if record else None
        overlap = overlap if overlap is not None else min(DEFAULT_OVERLAP_CHARS, size // 2)
        check_chunking(size, overlap)
        model = await self._model(given)
        settings = IndexSettings(embedding_model=model[0], model_path=model[1], adapter_path=model[2],
                                 chunk_chars=size, overlap_chars=overlap)  # fmt: skip
        if record is not None:
            mine = IndexSettings(**record.model_dump(include=set(IndexSettings.model_fields)))
            if (mine.embedding_model, mine.chunk_chars, mine.overlap_chars) != (
                settings.embedding_model, settings.chunk_chars, settings.overlap_chars):  # fmt: skip
                raise InvalidArguments(
                    f"embedding_model, chunk_chars, overlap_chars: index {index} holds chunks of {mine.chunk_chars} "
                    f"characters (overlap {mine.overlap_chars}) embedded with {mine.embedding_model}; leave them out "
                    "to add to it, or give another index name"
                )
            settings = mine
        return settings, model[3]

    async def _model(self, given: str) -> tuple[str, str, str | None, int]:
        """(label, model folder, adapter folder, weight bytes) for a folder or a registered version."""
        if re.fullmatch(MODEL_REFERENCE, given):
            version, model_path, adapter_path = await self._models.weights(given)
            folders = [model_path] + ([adapter_path] if adapter_path else [])
            weights = await asyncio.to_thread(_weight_bytes, [self._workspace.resolve(f, field="embedding_model") for f in folders])
            return version.id, model_path, adapter_path, weights
        folder = await asyncio.to_thread(self._workspace.resolve_tree, given, field="embedding_model")
        if not (folder / "config.json").is_file():
            raise InvalidArguments(f"embedding_model: {given} has no config.json; give a Hugging Face model folder "
                                   "(an encoder, or a language model) or a registered version '<name>@v<N>'")  # fmt: skip
        shown = self._workspace.shown(folder)
        return shown, shown, None, await asyncio.to_thread(_weight_bytes, [folder])

    async def _label(self, given: str) -> str:
        """How a model would be recorded, without loading it (to compare with an index's)."""
        if re.fullmatch(MODEL_REFERENCE, given):
            return given
        return self._workspace.shown(await asyncio.to_thread(self._workspace.resolve, given, field="embedding_model"))

    def _model_files(self, record: IndexInfo) -> ModelFiles:
        model = self._workspace.resolve_tree(record.model_path, field="embedding_model")
        adapter = record.adapter_path and self._workspace.resolve_tree(record.adapter_path, field="embedding_model")
        return ModelFiles(model, adapter or None)

    async def _refuse_concurrent(self, index: str, principal: Principal) -> None:
        """One build of an index at a time (a second would be refused when it is published anyway)."""
        for job in await self._engine.repo.list(ACTIVE, INDEX_KIND, limit=500):
            if job.arguments.get("index") == index:
                whose = f"job {job.id}" if principal.sees_everything or job.principal == principal.name else "another caller's job"
                raise Conflict(f"index: {index} is being built by {whose} ({job.state.value}); wait for it to end, "
                               "then run rag_index again: unchanged files are skipped")  # fmt: skip


def _weight_bytes(folders: list[Path]) -> int:
    return sum(path.stat().st_size for folder in folders for pattern in WEIGHTS for path in folder.glob(pattern))
