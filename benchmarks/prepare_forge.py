"""forge-mcp's side of the data benchmark, in its own process (so its peak memory is its
own): import the JSONL, then run the dataset_prepare job's code on it — exact and near
dedup, PII redaction, a random split — and print timings and peak RSS as JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import tempfile
import time
from pathlib import Path

from forge_mcp.app import ForgeApp
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.prepare import PrepareOptions, prepare
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.events import EventWriter
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace
from forge_mcp.settings import load_settings


async def main(source: Path, home: Path) -> dict:
    app = ForgeApp(load_settings(home=home, import_roots=[str(source.parent)]))
    await app.start(engine=False)
    try:
        started = time.perf_counter()
        imported = await app.datasets.import_(str(source), "bench")
        import_s = time.perf_counter() - started
        info = imported.dataset
        run = app.workspace.run("job_bench")
        run.output.mkdir(parents=True)
        spec = JobSpec(job_id=run.job_id, kind="dataset_prepare", arguments={}, attempt=1,
                       workspace=WorkerWorkspace(root=app.workspace.root))
        job = JobContext(run, spec, EventWriter(run.events))
        started = time.perf_counter()
        outcome = prepare(job, home / info.path, DatasetKind(info.kind), run.output, PrepareOptions(), info.rows)
        prepare_s = time.perf_counter() - started
    finally:
        await app.stop()
    return {
        "rows": info.rows,
        "import_s": round(import_s, 2),
        "prepare_s": round(prepare_s, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps": [s.model_dump() for s in outcome.steps],
        "output": str(run.output / "data.parquet"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("--home", type=Path, default=None)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="forge-bench-"))
    print(json.dumps(asyncio.run(main(args.source.resolve(), home))))
