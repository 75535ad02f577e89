"""Near-duplicate detection: MinHash signatures over word 3-gram shingles, banded LSH tuned
below the threshold to find candidate pairs generously, the exact Jaccard similarity of
the two shingle sets to confirm each pair, union-find to group them."""

from __future__ import annotations

import re
import zlib
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

PRIME = np.uint64(4294967311)  # the first prime above 2**32: products of 32-bit values fit in uint64
SHINGLE_WORDS = 3
CANDIDATE_MARGIN = 0.2
_WORD = re.compile(r"\w+")


def lsh_shape(num_perm: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band) whose S-curve midpoint (1/b)^(1/r) is closest to `threshold`."""
    shapes = [(b, num_perm // b) for b in range(1, num_perm + 1) if num_perm % b == 0]
    return min(shapes, key=lambda s: abs((1 / s[0]) ** (1 / s[1]) - threshold))


class MinHasher:
    def __init__(self, num_perm: int = 128, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.a = rng.integers(1, 2**32 - 1, num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 2**32 - 1, num_perm, dtype=np.uint64)

    def signature(self, text: str) -> np.ndarray:
        shingles = shingle(text)
        hashes = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64, count=len(shingles))
        return ((np.outer(hashes, self.a) + self.b) % PRIME).min(axis=0)


def shingle(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = self.parent.setdefault(x, x)
        while root != self.parent[root]:
            root = self.parent[root]
        while x != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        self.parent[self.find(x)] = self.find(y)


def near_duplicate_groups(
    texts: Sequence[str], threshold: float = 0.8, num_perm: int = 128, seed: int = 1
) -> list[list[int]]:
    """Groups (of indexes into `texts`, each sorted, two or more members) whose estimated
    Jaccard similarity is at least `threshold`."""
    texts = list(texts)
    hasher = MinHasher(num_perm, seed)
    signatures = np.stack([hasher.signature(t) for t in texts]) if texts else np.empty((0, num_perm), np.uint64)
    # Candidates from an S-curve centred well below the threshold: LSH misses fewer true
    # pairs, and the exact check below throws the extra candidates out.
    bands, rows = lsh_shape(num_perm, max(0.5, threshold - CANDIDATE_MARGIN))
    shingles: dict[int, set[str]] = {}

    def similar(i: int, j: int) -> bool:
        a = shingles.setdefault(i, shingle(texts[i]))
        b = shingles.setdefault(j, shingle(texts[j]))
        return jaccard(a, b) >= threshold

    groups = _UnionFind()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = signatures[:, band * rows : (band + 1) * rows]
        for index in range(len(signatures)):
            buckets[block[index].tobytes()].append(index)
        for members in buckets.values():
            first = members[0]
            for other in members[1:]:
                if groups.find(first) == groups.find(other):
                    continue
                if similar(first, other):
                    groups.union(first, other)
    clusters: dict[int, list[int]] = defaultdict(list)
    for index in groups.parent:
        clusters[groups.find(index)].append(index)
    return sorted((sorted(c) for c in clusters.values() if len(c) > 1), key=lambda c: c[0])
