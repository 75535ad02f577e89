"""rag_index's publish step, in the server: the generation the job built in its run folder
becomes the index's current one (index.json rewritten atomically), when the job succeeds and
no other build was published since it started; older generations but the one before go."""

from __future__ import annotations

import asyncio
import shutil
import time

from forge_mcp.errors import Conflict
from forge_mcp.jobs.models import Job
from forge_mcp.rag.build import staged
from forge_mcp.rag.jobs import RagIndexArguments
from forge_mcp.rag.layout import RAG, RECORD, IndexDir
from forge_mcp.rag.models import IndexInfo, IndexOutcome, RagIndexResult
from forge_mcp.workspace import Workspace


class PublishRagIndex:
    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace

    async def __call__(self, job: Job, arguments: RagIndexArguments, result: IndexOutcome) -> RagIndexResult:
        return await asyncio.to_thread(self._publish, job, arguments, result)

    def _publish(self, job: Job, arguments: RagIndexArguments, result: IndexOutcome) -> RagIndexResult:
        folder = IndexDir(self._workspace.root / RAG, arguments.index)
        record = folder.record()
        current = record.generation if record is not None else None
        if result.generation is None and record is not None:  # nothing changed: the current build stays
            return RagIndexResult(**result.model_dump(), info=record)
        if current not in (result.previous_generation, result.generation):
            raise Conflict(f"index {arguments.index}: another rag_index finished while this one ran; run rag_index "
                           "again (unchanged files are skipped)")  # fmt: skip
        target = folder.generation(job.id)
        if not target.path.exists():  # a publish retried after the move finds it there
            self._workspace.writable(folder.path.parent)
            folder.path.mkdir(parents=True, exist_ok=True)
            self._workspace.writable(folder.path)
            staged(self._workspace.run(job.id).output).rename(target.path)
        info = IndexInfo(**arguments.settings.model_dump(), index=arguments.index, generation=job.id,
                         dimensions=result.dimensions, sources=result.sources_total, chunks=result.chunks_total,
                         updated_at=time.time())  # fmt: skip
        folder.write_record(info)
        keep = {RECORD, job.id, result.previous_generation}
        for old in folder.path.iterdir():
            if old.is_dir() and old.name not in keep:
                shutil.rmtree(old, ignore_errors=True)
        return RagIndexResult(**result.model_dump(), info=info)
