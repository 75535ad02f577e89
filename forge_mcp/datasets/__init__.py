"""Datasets: streaming readers for each source format (readers.py), kind detection and
canonical forms (kinds.py), the import pipeline that writes a versioned, fingerprinted
Parquet folder atomically (importer.py), and the index in the workspace database
(repository.py)."""
