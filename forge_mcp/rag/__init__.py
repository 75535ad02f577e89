"""Retrieval (RAG): files or a dataset chunked, embedded with a local model and kept in chromadb
inside the workspace (rag/<index>/), with a lexical (BM25) index beside it; queried by meaning,
by words, or both. rag_index is a job (forge_mcp.rag.jobs); rag_query runs in the call."""
