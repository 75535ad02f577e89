"""What both training backends share and neither needs torch or mlx for: the rows of a
split, continued pre-training's text and data mixing, the result, and the files a run
leaves in runs/<job>/output."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.spec import TrainSpec


class TrainResult(BaseModel):
    output: str  # folder inside the run, relative to the workspace
    adapter: str
    method: str
    steps: int
    final_loss: float | None
    first_loss: float | None
    best_eval_loss: float | None
    base_eval_loss: float | None  # the base model on eval_split, before training (not after a resume)
    final_eval_loss: float | None
    train_runtime_s: float
    tokens_per_second: float | None
    resumed_from: str | None
    base_quantized_4bit: bool
    processes: int = 1
    train_rows: int
    dataset_fingerprint: str
    warnings: list[str]


def split_rows(dataset_file: Path, split: str) -> list[dict[str, Any]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(dataset_file, columns=["row", "split"])
    rows = table.filter(pc.equal(table.column("split"), split)).column("row").to_pylist()
    if not rows:
        raise InvalidArguments(f"split: the dataset has no rows in split {split!r}")
    return [json.loads(r) for r in rows]


def as_text(row: dict[str, Any], tokenizer: Any) -> dict[str, str]:
    """Continued pre-training reads plain text; a chat is rendered with the model's template."""
    if "text" in row:
        return {"text": row["text"]}
    return {"text": tokenizer.apply_chat_template(row["messages"], tokenize=False)}


def mix(domain: list[dict[str, Any]], general: list[dict[str, Any]], ratio: float, seed: int) -> list[dict[str, Any]]:
    """Domain rows plus general rows making up `ratio` of the result, shuffled by seed."""
    if not general or ratio <= 0:
        return domain
    rng = random.Random(seed)
    wanted = round(len(domain) * ratio / (1 - ratio))
    drawn = rng.sample(general, wanted) if wanted <= len(general) else [rng.choice(general) for _ in range(wanted)]
    rows = domain + drawn
    rng.shuffle(rows)
    return rows


def cpt_rows(spec: TrainSpec, rows: list[dict[str, Any]], general_file: Path | None, tokenizer: Any) -> list[dict[str, Any]]:
    """The training rows of a continued pre-training run, as text, general data mixed in."""
    general = split_rows(general_file, "train") if general_file is not None and spec.mix_ratio > 0 else []
    return mix([as_text(r, tokenizer) for r in rows], [as_text(r, tokenizer) for r in general], spec.mix_ratio, spec.seed)


def write_outputs(output: Path, spec: TrainSpec, result: TrainResult, packages: tuple[str, ...], **machine: Any) -> None:
    """spec.json, environment.json and, last (a launcher waits for it), summary.json."""
    versions = {}
    for name in (*packages, "forge-mcp"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    environment = {"python": platform.python_version(), "platform": platform.platform(), "packages": versions, **machine}
    (output / "spec.json").write_text(spec.model_dump_json(indent=2))
    (output / "environment.json").write_text(json.dumps(environment, indent=2))
    (output / "summary.json").write_text(result.model_dump_json(indent=2))
