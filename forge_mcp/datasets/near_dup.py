"""Near-duplicate detection: a 64-slot MinHash signature per text over word 3-gram shingles,
banded LSH tuned below the threshold to find candidate pairs generously, the exact Jaccard
similarity of the two shingle sets to confirm each pair, and union-find to group them.

Signatures use one-permutation hashing (one hash per shingle; its top bits pick a slot and
each slot keeps its minimum) with rotation densification for empty slots: a shingle costs
one hash instead of 64, and whole batches are hashed in numpy from the UTF-8 bytes. The
hashes are seeded and deterministic, so signatures made in different processes compare.

The steps are separate so that a large dataset keeps only signatures in memory and fetches
the texts of candidate pairs when needed."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

SHINGLE_WORDS = 3
SIGNATURE_SLOTS = 64
CANDIDATE_MARGIN = 0.2
BATCH_TEXTS = 2048
# A word is a run of ASCII letters, digits and '_' or of any non-ASCII characters, in lower
# case: the same rule as WORD_BYTES below, so that confirmation agrees with the signatures.
_WORD = re.compile("[0-9a-z_\u0080-\U0010ffff]+")
WORD_BYTES = np.zeros(256, dtype=bool)
WORD_BYTES[[*b"0123456789abcdefghijklmnopqrstuvwxyz_", *range(0x80, 0x100)]] = True
_U64 = np.uint64
_EMPTY = np.uint32(0xFFFFFFFF)
_BASE = 0x100000001B3  # polynomial base for word hashes; odd, so it is invertible mod 2**64


def lsh_shape(slots: int, threshold: float) -> tuple[int, int]:
    """(bands, rows per band) whose S-curve midpoint (1/b)^(1/r) is closest to `threshold`."""
    shapes = [(b, slots // b) for b in range(1, slots + 1) if slots % b == 0]
    return min(shapes, key=lambda s: abs((1 / s[0]) ** (1 / s[1]) - threshold))


def shingle(text: str) -> set[str]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {" ".join(words)}
    return {" ".join(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = x ^ (x >> _U64(30))
    x = x * _U64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> _U64(27))
    x = x * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


class MinHasher:
    def __init__(self, slots: int = SIGNATURE_SLOTS, seed: int = 1) -> None:
        if slots & (slots - 1) or not 2 <= slots <= 1024:
            raise ValueError("slots must be a power of two between 2 and 1024")
        self.slots = slots
        self.seed = _U64(seed * 0x9E3779B97F4A7C15 % 2**64)
        self._slot_shift = _U64(64 - slots.bit_length() + 1)

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """One uint32 row of `slots` values per text."""
        out = np.empty((len(texts), self.slots), dtype=np.uint32)
        for start in range(0, len(texts), BATCH_TEXTS):
            batch = texts[start : start + BATCH_TEXTS]
            out[start : start + len(batch)] = self._batch(batch)
        return out

    def shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """A 64-bit hash per word 3-gram of every text, in order, and how many each text has
        (a text of fewer than three words is one shingle of what it has, as in `shingle`)."""
        encoded = [t.lower().encode() for t in texts]
        data = np.frombuffer(b" ".join(encoded), dtype=np.uint8)
        text_starts = np.cumsum([0] + [len(e) + 1 for e in encoded[:-1]])
        is_word = WORD_BYTES[data]
        edges = np.diff(is_word.astype(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        powers, inverse = _power_tables(1 << len(data).bit_length())
        prefix = np.concatenate((np.zeros(1, dtype=_U64), np.cumsum(data * powers[: len(data)], dtype=_U64)))
        words = _mix((prefix[ends] - prefix[starts]) * inverse[starts] ^ self.seed)
        word_counts = np.bincount(np.searchsorted(text_starts, starts, side="right") - 1, minlength=len(texts))
        # Shingle k of a text starts at its word k; short texts get one shingle, padded with 0.
        counts = np.maximum(word_counts - (SHINGLE_WORDS - 1), 1)
        first_word = np.repeat(np.cumsum(word_counts) - word_counts, counts)
        first_word += np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        words_in_text = np.repeat(word_counts, counts)
        padded = np.concatenate((words, np.zeros(SHINGLE_WORDS, dtype=_U64)))
        hashes = np.zeros(len(first_word), dtype=_U64)
        for k in range(SHINGLE_WORDS):
            word = np.where(words_in_text > k, padded[np.minimum(first_word + k, len(words))], _U64(0))
            hashes = hashes * _U64(0x9E3779B97F4A7C15) + word
        return _mix(hashes), counts

    def _batch(self, texts: Sequence[str]) -> np.ndarray:
        hashes, counts = self.shingle_hashes(texts)
        rows, slots = len(texts), self.slots
        signature = np.full((rows, slots), _EMPTY, dtype=np.uint32)
        slot = (hashes >> self._slot_shift).astype(np.int64)
        cell = np.repeat(np.arange(rows) * slots, counts) + slot
        np.minimum.at(signature.reshape(-1), cell, (hashes & _U64(0xFFFFFFFF)).astype(np.uint32))
        empty = signature == _EMPTY
        if empty.any():
            # Rotation densification: an empty slot takes the value of the next filled slot to
            # its right (wrapping around), offset by the distance, so equal sets stay equal.
            columns = np.arange(2 * slots)
            filled = np.tile(~empty, 2)
            nearest = np.where(filled, columns, 2 * slots)
            nearest = np.minimum.accumulate(nearest[:, ::-1], axis=1)[:, ::-1][:, :slots]
            nearest = np.minimum(nearest, 2 * slots - 1)  # a text with no shingle keeps _EMPTY
            distance = (nearest - columns[:slots]).astype(np.uint32)
            borrowed = np.tile(signature, 2)[np.arange(rows)[:, None], nearest] + distance * np.uint32(0x9E3779B1)
            signature = np.where(empty, borrowed, signature)
        return signature


@functools.lru_cache(maxsize=4)
def _power_tables(size: int) -> tuple[np.ndarray, np.ndarray]:
    """BASE**k and BASE**-k mod 2**64 for k < size (sizes are powers of two, so few are made)."""
    powers = np.cumprod(np.concatenate((np.ones(1, _U64), np.full(size - 1, _BASE, _U64))), dtype=_U64)
    inverse = pow(_BASE, -1, 2**64)
    return powers, np.cumprod(np.concatenate((np.ones(1, _U64), np.full(size - 1, inverse, _U64))), dtype=_U64)


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
    texts: Sequence[str], threshold: float = 0.8, slots: int = SIGNATURE_SLOTS, seed: int = 1
) -> list[list[int]]:
    """Groups (of indexes into `texts`, each sorted, two or more members) whose word 3-gram
    Jaccard similarity is at least `threshold`."""
    texts = list(texts)
    if not texts:
        return []
    pairs = candidate_pairs(MinHasher(slots, seed).signatures(texts), threshold)
    return confirmed_groups(pairs, dict(enumerate(texts)), threshold)
