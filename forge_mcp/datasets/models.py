"""What a dataset version is, as stored and as shown to clients."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.datasets.kinds import Detection


class FieldSummary(BaseModel):
    name: str
    rows: int = Field(description="Rows that have this field")
    types: dict[str, int] = Field(description="JSON types seen, with counts")


class BadLine(BaseModel):
    line: str = Field(description="Where in the source: line number, element or row index, or file")
    reason: str


class DatasetInfo(BaseModel):
    id: str = Field(description="'<name>@v<version>'; tools also accept just the name for the newest version")
    name: str
    version: int
    fingerprint: str = Field(description="sha256 over the canonical rows, in order: cite it to pin the data")
    kind: str
    kind_confidence: float
    rows: int
    columns: list[FieldSummary] = Field(description="Top-level fields, their JSON types and how many rows have them")
    source: dict[str, Any]
    parent_id: str | None = None
    steps: list[dict[str, Any]] = Field(default_factory=list, description="Lineage: the steps that made this version")
    report: dict[str, Any] = Field(default_factory=dict)
    created_at: float
    path: str = Field(description="Folder inside the workspace")

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> DatasetInfo:
        return cls(
            id=row["id"],
            name=row["name"],
            version=row["version"],
            fingerprint=row["fingerprint"],
            kind=row["kind"],
            kind_confidence=row["kind_confidence"],
            rows=row["rows"],
            columns=[FieldSummary(**f) for f in json.loads(row["schema"])],
            source=json.loads(row["source"]),
            parent_id=row["parent_id"],
            steps=json.loads(row["steps"]),
            report=json.loads(row["report"]),
            created_at=row["created_at"],
            path=f"datasets/{row['name']}/v{row['version']}",
        )


class ImportResult(BaseModel):
    dataset: DatasetInfo
    deduplicated: bool = Field(description="True when this exact content was already imported under this name")
    detection: Detection
    rows_read: int
    bad_lines: int = Field(description="Lines or elements that could not be read and were skipped")
    unfit_rows: int = Field(0, description="Rows that were read but do not fit the detected kind: skipped, not counted")
    bad_line_examples: list[BadLine] = Field(description="Every skipped line (unreadable or not fitting), in source "
                                             "order, up to the first 50, with the reason")  # fmt: skip
