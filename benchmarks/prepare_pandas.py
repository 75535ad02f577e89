"""The baseline of the data benchmark: a straightforward pandas script doing the same
steps as dataset_prepare — load, keep valid chats, clean, redact PII, drop exact then near
duplicates, split, write Parquet — with the same text functions, the way one would write
it by hand: everything in one DataFrame, and the textbook MinHash (64 hash functions over
each row's shingle set, one row at a time). Prints timings as JSON.

    python -m benchmarks.prepare_pandas .bench/chats.jsonl .bench/pandas.parquet
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from forge_mcp.datasets import pii
from forge_mcp.datasets.near_dup import jaccard, lsh_shape, shingle
from forge_mcp.datasets.prepare import clean_text

THRESHOLD = 0.85
PERMUTATIONS = 64
_rng = np.random.default_rng(1)
A = _rng.integers(1, 2**63, PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
B = _rng.integers(0, 2**63, PERMUTATIONS, dtype=np.uint64)


def minhash(text: str) -> np.ndarray:
    hashes = np.fromiter((hash(s) for s in shingle(text)), dtype=np.int64).view(np.uint64)
    return ((hashes[:, None] * A + B) >> np.uint64(32)).min(axis=0).astype(np.uint32)


def valid(messages: object) -> bool:
    return (
        isinstance(messages, list)
        and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages)
        and any(m.get("role") == "assistant" for m in messages)
    )


def main(source: Path, output: Path) -> dict:
    started = time.perf_counter()
    df = pd.read_json(source, lines=True)
    df["line"] = (df.index + 1).astype(str)
    df = df[df["messages"].map(valid)]
    df["messages"] = df["messages"].map(lambda ms: [{**m, "content": clean_text(m["content"])} for m in ms])
    df["messages"] = df["messages"].map(lambda ms: [{**m, "content": pii.redact(m["content"])[0]} for m in ms])
    df["key"] = df["messages"].map(lambda ms: json.dumps(ms, sort_keys=True))
    df = df.drop_duplicates("key")
    df["text"] = df["messages"].map(lambda ms: "\n".join(m["content"] for m in ms))
    df["signature"] = df["text"].map(minhash)
    bands, rows = lsh_shape(PERMUTATIONS, THRESHOLD - 0.2)
    texts = df["text"].tolist()
    signatures = df["signature"].tolist()
    drop: set[int] = set()
    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i, signature in enumerate(signatures):
            buckets[signature[band * rows : (band + 1) * rows].tobytes()].append(i)
        for members in buckets.values():
            for other in members[1:]:
                if other not in drop and jaccard(shingle(texts[members[0]]), shingle(texts[other])) >= THRESHOLD:
                    drop.add(other)
    df = df.iloc[[i for i in range(len(df)) if i not in drop]]
    test = df.sample(frac=0.1, random_state=0).index
    df["split"] = "train"
    df.loc[test, "split"] = "test"
    df[["line", "key", "split"]].rename(columns={"key": "row"}).to_parquet(output)
    return {
        "rows": len(df),
        "prepare_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "output": str(output),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("source", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    print(json.dumps(main(args.source, args.output)))
