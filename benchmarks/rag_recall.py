"""Retrieval quality on the labelled fixture (tests/rag/fixtures): 40 short documents about
made-up topics and 50 questions, each labelled with the file that answers it (40 that share
key words with their answer, 10 paraphrased with few words in common). The corpus is indexed
with rag_index (the service, a real job) and every question is asked with rag_query in each mode:
embedding only, lexical only (BM25) and hybrid. Reported per mode: recall@1 and recall@5 (the
share of questions whose file is among the top 1 / 5 chunks) and the mean reciprocal rank, for
all questions and for each kind.

The embedding model is the tiny test model (226k parameters, built offline and seeded) unless
--model names a local model folder (a sentence encoder, say).

    make bench-rag
    python -m benchmarks.rag_recall --chunk-chars 400 --overlap-chars 80 [--model PATH] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from forge_mcp.app import ForgeApp
from forge_mcp.rag.models import QueryMode
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "rag" / "fixtures"
MODES: tuple[QueryMode, ...] = ("embedding", "lexical", "hybrid")
K = 5


@dataclass(frozen=True)
class Question:
    question: str
    source: str  # the file's name in the corpus
    kind: str  # keyword | paraphrase


def questions() -> list[Question]:
    return [Question(**row) for row in json.loads((FIXTURES / "questions.json").read_text())]


def copy_corpus(target: Path) -> None:
    shutil.copytree(FIXTURES / "corpus", target)


@dataclass(frozen=True)
class Recall:
    questions: int
    recall_at_1: float
    recall_at_5: float
    mrr: float  # of the file's first chunk within the top 5 (0 when absent)


def score(ranks: list[int | None]) -> Recall:
    """`ranks`: for each question, the 1-based rank of its file's first chunk in the top 5, or None."""
    n = max(len(ranks), 1)
    return Recall(questions=len(ranks), recall_at_1=round(sum(r == 1 for r in ranks) / n, 3),
                  recall_at_5=round(sum(r is not None for r in ranks) / n, 3),
                  mrr=round(sum(1 / r for r in ranks if r is not None) / n, 3))  # fmt: skip


async def ranks(app: ForgeApp, index: str, asked: list[Question], mode: QueryMode) -> list[int | None]:
    out = []
    for question in asked:
        result = await app.services.rag.query(index, question.question, k=K, mode=mode)
        names = [PurePosixPath(hit.source).name for hit in result.hits]
        out.append(names.index(question.source) + 1 if question.source in names else None)
    return out


async def measure(app: ForgeApp, index: str, asked: list[Question]) -> dict[str, dict[str, Recall]]:
    """mode -> {"all", "keyword", "paraphrase"} -> Recall."""
    out: dict[str, dict[str, Recall]] = {}
    for mode in MODES:
        found = await ranks(app, index, asked, mode)
        kinds = sorted({q.kind for q in asked})
        out[mode] = {"all": score(found),
                     **{kind: score([r for r, q in zip(found, asked, strict=True) if q.kind == kind]) for kind in kinds}}  # fmt: skip
    return out


async def run(folder: Path, model: Path | None, chunk_chars: int, overlap_chars: int) -> dict[str, Any]:
    home = folder / "ws"
    shutil.rmtree(home, ignore_errors=True)
    app = ForgeApp(load_settings(home=home, log_level="WARNING"))
    await app.start()
    try:
        if model is None:
            from forge_mcp.backends.tiny_model import build_tiny_model

            model = folder / "tiny-model"
            if not (model / "forge_tiny_model.json").exists():
                build_tiny_model(model)
        shutil.copytree(model, home / "models" / "encoder")
        copy_corpus(home / "docs")
        started = time.perf_counter()
        handle = await app.services.rag.index(Principal.local(), "fixture", paths=["docs"], embedding_model="models/encoder",
                                              chunk_chars=chunk_chars, overlap_chars=overlap_chars)  # fmt: skip
        job = await app.jobs.wait(handle.job_id, 900)
        if job.state.value != "SUCCEEDED":
            raise SystemExit(f"rag_index failed: {job.error}")
        built = time.perf_counter() - started
        results = await measure(app, "fixture", questions())
    finally:
        await app.stop()
    return {"model": "tiny test model" if model == folder / "tiny-model" else model.name, "chunks": job.result["chunks_total"],
            "chunk_chars": chunk_chars, "overlap_chars": overlap_chars, "index_seconds": round(built, 1),
            "results": {mode: {kind: r.__dict__ for kind, r in by_kind.items()} for mode, by_kind in results.items()}}  # fmt: skip


def table(report: dict[str, Any]) -> str:
    lines = [f"model: {report['model']}; {report['chunks']} chunks of {report['chunk_chars']} characters "
             f"(overlap {report['overlap_chars']}); index built in {report['index_seconds']} s (a job)", "",
             "| mode | recall@5 (all 50) | recall@1 | MRR | recall@5 keyword (40) | recall@5 paraphrase (10) |",
             "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for mode, by_kind in report["results"].items():
        every = by_kind["all"]
        lines.append(f"| {mode} | {every['recall_at_5']:.3f} | {every['recall_at_1']:.3f} | {every['mrr']:.3f} | "
                     f"{by_kind['keyword']['recall_at_5']:.3f} | {by_kind['paraphrase']['recall_at_5']:.3f} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a local model folder (default: the tiny test model)")
    parser.add_argument("--chunk-chars", type=int, default=400)
    parser.add_argument("--overlap-chars", type=int, default=80)
    parser.add_argument("--folder", type=Path, help="where to work (default: a temporary folder)")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        folder = options.folder or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        report = asyncio.run(run(folder.resolve(), options.model, options.chunk_chars, options.overlap_chars))
    print(json.dumps(report, indent=1) if options.json else table(report))
