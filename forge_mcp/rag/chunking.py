"""Text into overlapping chunks, measured in characters (not tokens).

A chunk is at most `size` characters. It ends at the last paragraph break, line break,
sentence end or space in its final fifth when there is one (so words stay whole), else
exactly at `size`. The next chunk starts `overlap` characters before the previous one ended
(at least one character further on), moved forward to the start of a word when the overlap
begins inside one. Each chunk keeps its span in the source: text[start:end]."""

from __future__ import annotations

from dataclasses import dataclass

from forge_mcp.errors import InvalidArguments
from forge_mcp.rag.limits import MAX_CHUNK_CHARS, MIN_CHUNK_CHARS

BREAKS = ("\n\n", "\n", ". ", "? ", "! ", " ")  # preferred places to end a chunk, best first
SOFT_FRACTION = 0.2  # a chunk may end this share of `size` early, at a break


@dataclass(frozen=True)
class Chunk:
    number: int  # 0, 1, … within its document
    start: int  # character offsets into the document: text[start:end]
    end: int
    text: str


def check_chunking(size: int, overlap: int) -> None:
    """Refuse sizes out of bounds, naming the argument and the bound."""
    if not MIN_CHUNK_CHARS <= size <= MAX_CHUNK_CHARS:
        raise InvalidArguments(f"chunk_chars: give {MIN_CHUNK_CHARS}..{MAX_CHUNK_CHARS} characters (got {size})")
    if overlap < 0 or overlap > size // 2:
        raise InvalidArguments(f"overlap_chars: give 0..{size // 2} characters, at most half of chunk_chars "
                               f"({size}); got {overlap}")  # fmt: skip


def chunk_text(text: str, size: int, overlap: int, *, first_number: int = 0) -> list[Chunk]:
    """The chunks of `text`; none for text that is only whitespace."""
    check_chunking(size, overlap)
    chunks: list[Chunk] = []
    start, length = 0, len(text)
    while start < length:
        end = _end(text, start, size)
        piece = text[start:end]
        if piece.strip():
            chunks.append(Chunk(first_number + len(chunks), start, end, piece))
        if end >= length:
            break
        start = _next_start(text, start, end, overlap)
    return chunks


def _end(text: str, start: int, size: int) -> int:
    hard = start + size
    if hard >= len(text):
        return len(text)
    floor = hard - int(size * SOFT_FRACTION)
    for mark in BREAKS:
        at = text.rfind(mark, floor, hard)
        if at != -1:
            return at + len(mark)
    return hard


def _next_start(text: str, start: int, end: int, overlap: int) -> int:
    at = end - overlap
    if overlap and at > start and not text[at - 1].isspace():
        space = text.find(" ", at, end)
        if space != -1 and space + 1 < end:
            at = space + 1
    return max(at, start + 1)
