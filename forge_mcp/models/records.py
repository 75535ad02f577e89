"""What the registry stores about a model version."""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Literal

from pydantic import BaseModel, Field

Stage = Literal["registered", "staging", "production", "archived"]
# Where a version may go from each stage; archived is the end.
NEXT_STAGES: dict[str, tuple[str, ...]] = {
    "registered": ("staging", "production", "archived"),
    "staging": ("production", "registered", "archived"),
    "production": ("staging", "archived"),
    "archived": (),
}


class ModelVersion(BaseModel):
    id: str = Field(description="'<name>@v<version>'")
    name: str
    version: int
    stage: Stage
    kind: Literal["adapter", "full"]
    path: str = Field(description="Folder inside the workspace, with a model card (README.md)")
    base_model: str | None = Field(description="What an adapter applies to")
    dataset_id: str | None
    dataset_fingerprint: str | None
    job_id: str | None = Field(description="The training job it came from")
    spec: dict[str, Any]
    metrics: dict[str, Any]
    sweep: dict[str, Any] | None = Field(None, description="From a sweep: sweep_id, trial, params, objective and value")
    created_at: float
    updated_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ModelVersion:
        values = dict(row)
        values["spec"] = json.loads(values["spec"])
        values["metrics"] = json.loads(values["metrics"])
        values["sweep"] = json.loads(values["sweep"]) if values.get("sweep") else None
        return cls(**values)


class ModelExport(BaseModel):
    model_id: str
    key: str = Field(description="'adapter', 'merged' or 'gguf-<quantization>'")
    format: Literal["adapter", "merged", "gguf"]
    quantization: str | None
    path: str = Field(description="Folder inside the workspace, with manifest.json")
    file: str | None = Field(description="The GGUF file, for GGUF exports")
    job_id: str
    verification: dict[str, Any] = Field(description="Next-token agreement with the source model on fixed prompts")
    created_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ModelExport:
        return cls(**{**dict(row), "verification": json.loads(row["verification"])})
