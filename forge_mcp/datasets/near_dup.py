"""Near-duplicate detection: MinHash signatures over word 3-gram shingles (computed in
vectorised batches), banded LSH tuned below the threshold to find candidate pairs
generously, the exact Jaccard similarity of the two shingle sets to confirm each pair,
and union-find to group them. The steps are separate so that a large dataset can keep
only the signatures in memory and fetch the texts of candidate pairs when needed."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

SHINGLE_WORDS = 3
NUM_PERM = 64
CANDIDATE_MARGIN = 0.2
BATCH_TEXTS = 512
_WORD = re.compile(r"\w+")


def lsh_shape(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band) whose S-curve midpoint (1/b)^(1/r) is closest to `threshold`."""
    shapes = [(b, num_perm // b) for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(shapes, key=lambda s: abs((1 / s[0]) ** (1 / s[1]) - threshold))


def shingle(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class MinHasher:
    def __init__(self, num_perm: int = NUM_PERM, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        # Multiply-shift hashing: (a*x + b) mod 2**64 (numpy's native wrap-around), top 32 bits.
        self.a = rng.integers(1, 2**63, num_perm, dtype=np.uint64) | np.uint64(1)
        self.b = rng.integers(0, 2**63, num_perm, dtype=np.uint64)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """One uint32 row of `num_perm` minimums per text, computed a batch of texts at a time."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        for start in range(0, len(texts), BATCH_TEXTS):
            sets = [shingle(t) for t in texts[start : start + BATCH_TEXTS]]
            sizes = np.fromiter((len(s) for s in sets), dtype=np.int64, count=len(sets))
            # str hashes are salted per process, and consistent within it: signatures are only
            # ever compared with others computed in the same process.
            hashes = np.fromiter((hash(x) for s in sets for x in s), dtype=np.int64, count=int(sizes.sum())).view(np.uint64)
            values = (hashes[:, None] * self.a + self.b) >> np.uint64(32)
            offsets = np.concatenate(([0], np.cumsum(sizes)[:-1]))
            out[start : start + len(sets)] = np.minimum.reduceat(values, offsets, axis=0).astype(np.uint32)
        return out


def candidate_pairs(signatures: np.ndarray, threshold: float) -> set[tuple[int, int]]:
    """Pairs (i < j) that share a band bucket under an S-curve centred below the threshold."""
    bands, rows = lsh_shape(signatures.shape[1], max(0.5, threshold - CANDIDATE_MARGIN))
    pairs: set[tuple[int, int]] = set()
    for band in range(bands):
        block = np.ascontiguousarray(signatures[:, band * rows : (band + 1) * rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * rows))).ravel()
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        ends = np.concatenate((starts[1:], [len(ordered)]))
        for s, e in zip(starts, ends, strict=True):
            if e - s > 1:
                first = int(order[s])
                pairs.update((min(first, int(o)), max(first, int(o))) for o in order[s + 1 : e])
    return pairs


def confirmed_groups(pairs: set[tuple[int, int]], texts: Mapping[int, str], threshold: float) -> list[list[int]]:
    """Groups of the pairs whose exact shingle Jaccard is at least `threshold`."""
    shingles: dict[int, set[str]] = {}
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in sorted(pairs):
        if find(i) == find(j):
            continue
        a = shingles.setdefault(i, shingle(texts[i]))
        b = shingles.setdefault(j, shingle(texts[j]))
        if jaccard(a, b) >= threshold:
            parent[find(i)] = find(j)
    clusters: dict[int, list[int]] = defaultdict(list)
    for index in parent:
        clusters[find(index)].append(index)
    return sorted((sorted(c) for c in clusters.values() if len(c) > 1), key=lambda c: c[0])


def near_duplicate_groups(
    texts: Sequence[str], threshold: float = 0.8, num_perm: int = NUM_PERM, seed: int = 1
) -> list[list[int]]:
    """Groups (of indexes into `texts`, each sorted, two or more members) whose word 3-gram
    Jaccard similarity is at least `threshold`."""
    texts = list(texts)
    if not texts:
        return []
    pairs = candidate_pairs(MinHasher(num_perm, seed).signatures(texts), threshold)
    return confirmed_groups(pairs, dict(enumerate(texts)), threshold)
