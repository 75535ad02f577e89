"""The BM25 index: words folded the same way for chunks and queries, rare shared words ranked
first, a source's chunks removed with it, and a read-only opening for queries."""

from __future__ import annotations

from pathlib import Path

from forge_mcp.rag.lexical import LexicalIndex, words


def test_words_are_folded_and_function_words_left_out() -> None:
    assert words("What are the Lanterns of VELMORA?") == ["lantern", "velmora"]
    assert words("glass moss bus analysis ｆｕｌｌｗｉｄｔｈ") == ["glass", "moss", "bus", "analysis", "fullwidth"]


def test_bm25_ranks_the_chunk_sharing_rare_words_first_and_forgets_a_removed_source(tmp_path: Path) -> None:
    path = tmp_path / "lexical.sqlite3"
    with LexicalIndex(path) as index:
        index.add([("a-0", "a.md", "The lantern festival of Velmora is held on the first frost."),
                   ("b-0", "b.md", "A festival of cheese is held in the caves every year."),
                   ("c-0", "c.md", "Nothing in common here at all.")])  # fmt: skip
    with LexicalIndex(path, read_only=True) as index:
        scores = index.scores("When is the Velmora festival held?")
    assert set(scores) == {"a-0", "b-0"} and scores["a-0"] > scores["b-0"] > 0
    with LexicalIndex(path) as index:
        index.remove_source("a.md")
        assert set(index.scores("velmora festival")) == {"b-0"}
        assert index.scores("") == {}
