"""Chunks are measured in characters: bounded sizes, an overlap of at most half a chunk, spans
that point into the text, whole words where there is a space to end at, and nothing lost."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.rag.chunking import check_chunking, chunk_text

TEXT = " ".join(f"Sentence {i} tells of the lantern number {i * 7}." for i in range(200))


@pytest.mark.parametrize(("size", "overlap", "named"), [
    (99, 0, "chunk_chars: give 100..8000"),
    (8001, 0, "chunk_chars: give 100..8000"),
    (400, 201, "overlap_chars: give 0..200"),
    (400, -1, "overlap_chars: give 0..200"),
])  # fmt: skip
def test_sizes_out_of_bounds_are_refused_naming_the_argument(size: int, overlap: int, named: str) -> None:
    with pytest.raises(InvalidArguments, match=named):
        check_chunking(size, overlap)
    with pytest.raises(InvalidArguments, match=named):
        chunk_text(TEXT, size, overlap)


@pytest.mark.parametrize(("size", "overlap"), [(100, 0), (100, 50), (400, 80), (1000, 200), (8000, 4000)])
def test_chunks_cover_the_text_within_their_size_with_spans_into_it(size: int, overlap: int) -> None:
    chunks = chunk_text(TEXT, size, overlap)
    assert [c.number for c in chunks] == list(range(len(chunks)))
    assert all(c.text == TEXT[c.start : c.end] and 0 < len(c.text) <= size for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(TEXT)
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.start < after.start <= before.end  # no gap, always moving on
        assert before.end - after.start <= overlap  # overlap at most as asked
        if overlap == 0:
            assert after.start == before.end
    if overlap:  # consecutive chunks share text when an overlap is asked for
        assert all(b.end > a.start for a, b in zip(chunks, chunks[1:], strict=False))
        assert sum(b.end - a.start for a, b in zip(chunks, chunks[1:], strict=False)) > 0


def test_chunks_end_at_spaces_so_words_stay_whole() -> None:
    chunks = chunk_text(TEXT, 400, 80)
    for chunk in chunks[:-1]:
        assert TEXT[chunk.end - 1] == " ", chunk  # ends just after a space
        assert TEXT[chunk.start - 1] == " " if chunk.start else True  # starts at a word


def test_a_text_without_breaks_is_cut_at_the_size_and_blank_text_has_no_chunks() -> None:
    chunks = chunk_text("x" * 1050, 500, 100)
    assert [(c.start, c.end) for c in chunks] == [(0, 500), (400, 900), (800, 1050)]
    assert chunk_text(" \n\n\t ", 100, 0) == []
    assert [(c.start, c.end) for c in chunk_text("short", 100, 20)] == [(0, 5)]


def test_numbers_continue_from_a_given_start() -> None:
    assert [c.number for c in chunk_text(TEXT[:1000], 400, 0, first_number=7)] == [7, 8, 9]
