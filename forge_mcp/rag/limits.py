"""The bounds of indexing and querying, in one place: the tools' argument bounds and the
checks behind them read the same numbers."""

from __future__ import annotations

INDEX_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a folder name under <workspace>/rag/
# A registered model version as an embedding model: '<name>@v<N>' (anything else is a folder).
MODEL_REFERENCE = r"^[a-z0-9][a-z0-9_.-]{0,63}@v[0-9]{1,6}$"

# Chunks are measured in characters (not tokens): the same text gives the same chunks whatever
# the model, and spans point straight into the source.
MIN_CHUNK_CHARS = 100
MAX_CHUNK_CHARS = 8_000
DEFAULT_CHUNK_CHARS = 1_000
DEFAULT_OVERLAP_CHARS = 200

MAX_PATHS = 50  # paths given to one rag_index
MAX_FILES = 20_000  # files one rag_index reads
MAX_FILE_BYTES = 10_000_000  # a larger file is skipped, and named
MAX_PATTERNS = 20
DEFAULT_INCLUDE = ("*.md", "*.markdown", "*.txt", "*.rst")
MAX_UNREADABLE_SHOWN = 50  # unreadable files named in a result

EMBED_BATCH = 16  # chunks per forward pass
CHROMA_BATCH = 1_000  # chunks per chromadb add

MAX_K = 20
MAX_QUERY_CHARS = 2_000
CANDIDATES = 50  # at least this many chunks from each ranking go into the hybrid fusion
HYBRID_EMBEDDING_WEIGHT = 0.5  # hybrid score = w * cosine + (1 - w) * BM25 / best BM25 (forge_mcp.rag.search)
