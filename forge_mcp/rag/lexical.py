"""A lexical index (BM25) over the chunks, in one sqlite file beside the vectors: the words of
each chunk and how often they occur. Embeddings of a small or general model miss exact names
and rare words that a question shares with its answer; BM25 finds those.

Words are NFKC-folded, lowercased runs of letters and digits; common English function words
are left out and a plural 's' is folded (lanterns -> lantern)."""

from __future__ import annotations

import math
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

K1 = 1.2
B = 0.75
WORD = re.compile(r"\w+")
STOPWORDS = frozenset(
    "a an and are as at be been but by can could did do does for from had has have how i if in into is it its of on "
    "or our so than that the their them then there these they this to was we were what when where which who whom "
    "why will with would you your".split()
)
SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (id TEXT PRIMARY KEY, source TEXT NOT NULL, length INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_source ON chunks (source);
CREATE TABLE IF NOT EXISTS postings (term TEXT NOT NULL, chunk TEXT NOT NULL, tf INTEGER NOT NULL,
                                     PRIMARY KEY (term, chunk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS postings_chunk ON postings (chunk);
"""


def words(text: str) -> list[str]:
    out = []
    for word in WORD.findall(unicodedata.normalize("NFKC", text).lower()):
        if word in STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
            word = word[:-1]
        out.append(word)
    return out


class LexicalIndex:
    """One generation's lexical index (a sqlite file). Open it with `with`."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        if read_only:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        else:
            self._db = sqlite3.connect(path)
            self._db.executescript(SCHEMA)

    def __enter__(self) -> LexicalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def add(self, chunks: Iterable[tuple[str, str, str]]) -> None:
        """(chunk id, source, text) for each chunk."""
        with self._db:
            for chunk_id, source, text in chunks:
                counts = Counter(words(text))
                self._db.execute("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?)", (chunk_id, source, sum(counts.values())))
                self._db.executemany("INSERT OR REPLACE INTO postings VALUES (?, ?, ?)",
                                     [(term, chunk_id, tf) for term, tf in counts.items()])  # fmt: skip

    def remove_source(self, source: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM postings WHERE chunk IN (SELECT id FROM chunks WHERE source = ?)", (source,))
            self._db.execute("DELETE FROM chunks WHERE source = ?", (source,))

    def scores(self, query: str) -> dict[str, float]:
        """BM25 of every chunk that holds a word of `query` (Okapi BM25, k1 1.2, b 0.75)."""
        total, average = self._db.execute("SELECT COUNT(*), AVG(length) FROM chunks").fetchone()
        if not total:
            return {}
        average = max(float(average or 0), 1.0)
        out: dict[str, float] = {}
        for term in set(words(query)):
            rows = self._db.execute(
                "SELECT p.chunk, p.tf, c.length FROM postings p JOIN chunks c ON c.id = p.chunk WHERE p.term = ?", (term,)
            ).fetchall()
            if not rows:
                continue
            idf = math.log(1 + (total - len(rows) + 0.5) / (len(rows) + 0.5))
            for chunk_id, tf, length in rows:
                out[chunk_id] = out.get(chunk_id, 0.0) + idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        return out
