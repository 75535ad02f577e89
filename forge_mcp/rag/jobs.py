"""The RAG job kind (rag_index): builds an index's next generation in a worker. The server
publishes it (forge_mcp.rag.publish) when the job succeeds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Resources
from forge_mcp.rag.build import DatasetSource, Request, build
from forge_mcp.rag.models import IndexOutcome, IndexSettings

GIB = 1024**3


class DatasetArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    name: str
    path: str
    fingerprint: str


class RagIndexArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: str
    paths: list[str]  # as the caller sees them (relative, or inside an import root); checked again in the job
    include: list[str]
    dataset: DatasetArguments | None = None
    settings: IndexSettings
    weight_bytes: int = 0  # of the embedding model's weights, for the memory estimate


def index_resources(arguments: RagIndexArguments) -> Resources:
    # The model as loaded (f32, twice for an adapter merge), plus chunks, chromadb and the runtime.
    return Resources(memory_gb=round(1.0 + 2.5 * arguments.weight_bytes / GIB, 2))


def rag_index(job: JobContext, arguments: RagIndexArguments) -> IndexOutcome:
    dataset = arguments.dataset
    request = Request(index=arguments.index, paths=arguments.paths, include=arguments.include,
                      dataset=DatasetSource(**dataset.model_dump()) if dataset is not None else None,
                      settings=arguments.settings)  # fmt: skip
    return build(job, request)


RAG_INDEX = JobKind("rag_index", RagIndexArguments, IndexOutcome, rag_index, index_resources)
