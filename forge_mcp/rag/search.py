"""Top-k chunks of one generation for a query: by embedding (cosine similarity), by words
(BM25), or hybrid: the candidates of both rankings, each scored

    w * max(cosine, 0) + (1 - w) * BM25 / the best BM25 among the candidates,   w = 0.5

The cosine is taken as it is, not stretched over the candidates: a model whose similarities
barely differ (the tiny test model's lie within ~0.2 of each other, as good as random) moves the
ranking little, and a discriminating encoder moves it much. Min-max scaling the cosines instead
let the tiny model's noise outvote BM25 (recall@1 0.86 against 0.96 on the fixture)."""

from __future__ import annotations

from forge_mcp.rag.layout import Generation
from forge_mcp.rag.lexical import LexicalIndex
from forge_mcp.rag.limits import CANDIDATES, HYBRID_EMBEDDING_WEIGHT
from forge_mcp.rag.models import Hit, QueryMode
from forge_mcp.rag.vectors import Vectors


def search(generation: Generation, model: str, text: str, vector: list[float] | None, k: int,
           mode: QueryMode) -> tuple[list[Hit], int]:  # fmt: skip
    """(hits, chunks in the index)."""
    with Vectors(generation.chroma, model) as vectors:
        total = vectors.count()
        wanted = min(total, max(5 * k, CANDIDATES))
        semantic = vectors.nearest(vector, wanted) if vector is not None and mode != "lexical" else {}
        lexical: dict[str, float] = {}
        if mode != "embedding":
            with LexicalIndex(generation.lexical, read_only=True) as words:
                lexical = words.scores(text)
        ranked = rank(semantic, lexical, vectors, vector, k, mode, wanted)
        found = vectors.chunks([chunk_id for chunk_id, _ in ranked])
    hits = []
    for chunk_id, score in ranked:
        body, meta = found.get(chunk_id, ("", {}))
        hits.append(Hit(source=str(meta.get("source", "")), chunk=int(meta.get("chunk", 0)),
                        start=int(meta.get("start", 0)), end=int(meta.get("end", 0)),
                        row=str(meta["row"]) if "row" in meta else None, score=round(score, 6),
                        embedding_score=_rounded(semantic.get(chunk_id)) if mode != "lexical" else None,
                        lexical_score=round(lexical.get(chunk_id, 0.0), 6) if mode != "embedding" else None,
                        text=body))  # fmt: skip
    return hits, total


def rank(semantic: dict[str, float], lexical: dict[str, float], vectors: Vectors, vector: list[float] | None,
         k: int, mode: QueryMode, wanted: int) -> list[tuple[str, float]]:  # fmt: skip
    """(chunk id, score), best first, at most k."""
    if mode == "embedding":
        return _top(semantic, k)
    if mode == "lexical" or vector is None:
        return _top(lexical, k)
    candidates = set(semantic) | {chunk_id for chunk_id, _ in _top(lexical, wanted)}
    missing = [chunk_id for chunk_id in candidates if chunk_id not in semantic]
    for chunk_id, other in vectors.vectors(sorted(missing)).items():
        semantic[chunk_id] = sum(a * b for a, b in zip(vector, other, strict=True))
    best = max((lexical.get(c, 0.0) for c in candidates), default=0.0)
    fused = {}
    for chunk_id in candidates:
        near = max(semantic[chunk_id], 0.0)
        words = lexical.get(chunk_id, 0.0) / best if best > 0 else 0.0
        fused[chunk_id] = HYBRID_EMBEDDING_WEIGHT * near + (1 - HYBRID_EMBEDDING_WEIGHT) * words
    return _top(fused, k)


def _top(scores: dict[str, float], k: int) -> list[tuple[str, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 6)
