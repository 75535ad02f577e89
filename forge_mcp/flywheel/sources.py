"""Where a traces_to_dataset job reads its rows: a folder per request under
datasets/.from-traces/, one subfolder per kind in the layout an import stages (data.parquet
of line and row, the line being where the row came from) beside lineage.json (the traces it
was built from). Written by the server before the job is queued, whole or not at all, and
named by its content, so the same request names the same folder (an idempotency key sent
again finds the same job); the publish step removes it once the datasets are published."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forge_mcp.datasets.importer import DATA_FILE, canonical_json
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.flywheel.rows import Row

SOURCES = ".from-traces"  # under datasets/; no dataset name starts with a dot
LINEAGE = "lineage.json"


def sources_root(datasets: Path) -> Path:
    return datasets / SOURCES


def write_sources(root: Path, rows: Mapping[DatasetKind, Sequence[Row]], request: Mapping[str, Any]) -> tuple[Path, bool]:
    """The folder holding `rows` (a subfolder per kind with rows), and whether this call wrote it
    (else it was there already); `request` (who asked, and how) is part of its name. Runs in a thread."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode())
    for kind, kind_rows in sorted(rows.items()):
        digest.update(kind.value.encode())
        for row in kind_rows:
            digest.update(f"\n{row.line}\t{canonical_json(row.row)}".encode())
    folder = root / digest.hexdigest()[:32]
    if folder.is_dir():
        return folder, False
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{os.getpid()}-{uuid.uuid4().hex}"
    try:
        for kind, kind_rows in rows.items():
            if kind_rows:
                _write_kind(partial / kind.value, kind_rows)
        partial.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise
        return folder, False  # the same request, written meanwhile
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return folder, True


def _write_kind(folder: Path, rows: Sequence[Row]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    schema = pa.schema([("line", pa.string()), ("row", pa.string())])
    table = pa.table({"line": [r.line for r in rows], "row": [canonical_json(r.row) for r in rows]}, schema=schema)
    pq.write_table(table, folder / DATA_FILE, compression="zstd")
    traces = list(dict.fromkeys(trace_id for row in rows for trace_id in row.traces))
    (folder / LINEAGE).write_text(json.dumps({"traces": traces}))


def read_lineage(folder: Path) -> list[str]:
    """The ids of the traces a kind's rows were built from."""
    return list(json.loads((folder / LINEAGE).read_text())["traces"])
