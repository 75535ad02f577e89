"""The vectors of one generation, in chromadb (a PersistentClient on the generation's chroma/
folder, telemetry off). The collection's embedding function is forge-mcp's local model, never
chromadb's default (which downloads one): vectors are computed by forge_mcp.rag.encoder and
handed over, and a query passes its vector too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from forge_mcp.errors import ForgeError
from forge_mcp.extras import require_extra
from forge_mcp.rag.layout import COLLECTION
from forge_mcp.rag.limits import CHROMA_BATCH

Embed = Callable[[Sequence[str]], list[list[float]]]
EMBEDDING_FUNCTION = "forge-local-model"


class Vectors:
    """Open with `with`; `embed` is needed only if chromadb is handed texts without vectors."""

    def __init__(self, folder: Path, model: str, embed: Embed | None = None) -> None:
        require_extra("rag", "retrieval indexes")
        import chromadb
        from chromadb.config import Settings

        self._client = chromadb.PersistentClient(path=str(folder), settings=Settings(anonymized_telemetry=False))
        self._collection = self._client.get_or_create_collection(
            COLLECTION, embedding_function=local_embedding_function(model, embed),
            configuration={"hnsw": {"space": "cosine"}},
        )  # fmt: skip

    def __enter__(self) -> Vectors:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def count(self) -> int:
        return int(self._collection.count())

    def add(self, ids: list[str], vectors: list[list[float]], texts: list[str], metadata: list[dict[str, Any]]) -> None:
        for first in range(0, len(ids), CHROMA_BATCH):
            last = first + CHROMA_BATCH
            self._collection.add(ids=ids[first:last], embeddings=vectors[first:last], documents=texts[first:last],
                                 metadatas=metadata[first:last])  # fmt: skip

    def remove_source(self, source: str) -> None:
        self._collection.delete(where={"source": source})

    def nearest(self, vector: list[float], n: int) -> dict[str, float]:
        """chunk id -> cosine similarity, for the `n` nearest chunks."""
        if n <= 0:
            return {}
        found = self._collection.query(query_embeddings=[vector], n_results=n, include=["distances"])
        return {chunk_id: 1.0 - float(distance) for chunk_id, distance in zip(found["ids"][0], found["distances"][0], strict=True)}

    def vectors(self, ids: list[str]) -> dict[str, list[float]]:
        if not ids:
            return {}
        found = self._collection.get(ids=ids, include=["embeddings"])
        return {chunk_id: [float(x) for x in vector] for chunk_id, vector in zip(found["ids"], found["embeddings"], strict=True)}

    def chunks(self, ids: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """chunk id -> (text, metadata)."""
        if not ids:
            return {}
        found = self._collection.get(ids=ids, include=["documents", "metadatas"])
        return {chunk_id: (text or "", dict(meta or {}))
                for chunk_id, text, meta in zip(found["ids"], found["documents"], found["metadatas"], strict=True)}  # fmt: skip


def local_embedding_function(model: str, embed: Embed | None) -> Any:
    """A chromadb embedding function backed by forge-mcp's local model (recorded by name in the
    collection's configuration, so chromadb never falls back to its downloading default)."""
    import numpy as np
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings

    class LocalModelEmbedding(EmbeddingFunction[Documents]):
        def __init__(self, model: str) -> None:
            self._model = model

        def __call__(self, input: Documents) -> Embeddings:
            if embed is None:
                raise ForgeError(f"no model loaded to embed texts for {self._model}")
            return [np.asarray(vector, dtype=np.float32) for vector in embed(list(input))]

        @staticmethod
        def name() -> str:
            return EMBEDDING_FUNCTION

        def get_config(self) -> dict[str, Any]:
            return {"model": self._model}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> LocalModelEmbedding:
            return LocalModelEmbedding(str(config.get("model", "")))

        def default_space(self) -> str:  # type: ignore[override]
            return "cosine"

        def supported_spaces(self) -> list[str]:  # type: ignore[override]
            return ["cosine"]

    return LocalModelEmbedding(model)
