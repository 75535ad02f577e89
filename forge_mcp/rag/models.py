"""What the RAG tools return, and what an index records about itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

QueryMode = Literal["hybrid", "embedding", "lexical"]


class IndexSettings(BaseModel):
    """Fixed when an index is created: every chunk of it was made and embedded this way."""

    embedding_model: str = Field(description="As given: a model folder, or a registered version '<name>@v<N>'")
    model_path: str  # the folder loaded (relative to the workspace, or inside an import root)
    adapter_path: str | None = None  # a registered adapter version's folder, merged into model_path
    chunk_chars: int
    overlap_chars: int


class IndexInfo(IndexSettings):
    index: str
    generation: str | None = Field(description="The build queries read (the job that built it)")
    dimensions: int | None = None
    sources: int = Field(0, description="Files and datasets in the index")
    chunks: int = 0
    updated_at: float | None = None


class IndexList(BaseModel):
    indexes: list[IndexInfo]


class Unreadable(BaseModel):
    path: str
    reason: str


class IndexOutcome(BaseModel):
    """What a rag_index job did."""

    index: str
    generation: str | None = Field(description="The new build; null when nothing changed (the current one stays)")
    previous_generation: str | None = Field(description="The build this one started from")
    files_seen: int
    files_indexed: int = Field(description="New or changed since the last build: chunked and embedded")
    files_unchanged: int = Field(description="Same content hash as in the last build: skipped")
    files_removed: int = Field(description="Gone from the given folders (or an older version of the dataset)")
    unreadable: list[Unreadable] = Field(description="Skipped: not UTF-8 text, too large (first 50)")
    chunks_added: int
    chunks_removed: int
    chunks_total: int
    sources_total: int
    truncated_chunks: int = Field(description="Chunks longer than the model's input limit: embedded from their start")
    dimensions: int | None = None
    seconds: float


class RagIndexResult(IndexOutcome):
    """The job's result once published: the index as queries now see it."""

    info: IndexInfo


class Hit(BaseModel):
    source: str = Field(description="File (relative to the workspace, or in an import root) or dataset version")
    chunk: int = Field(description="Chunk number within the source, from 0")
    start: int = Field(description="Character span in the file (or the dataset row): text = source[start:end]")
    end: int
    row: str | None = Field(None, description="For a dataset: the row's line")
    score: float = Field(description="What the hits are ranked by (0..1 in hybrid mode)")
    embedding_score: float | None = Field(None, description="Cosine similarity to the query")
    lexical_score: float | None = Field(None, description="BM25 of the query's words")
    text: str


class QueryResult(BaseModel):
    index: str
    mode: QueryMode
    embedding_model: str
    chunks_in_index: int
    hits: list[Hit]
