"""What both training backends share and neither needs torch or mlx for: the rows a run
trains and evaluates on (a split, or every row of a dataset without splits, with a seeded
hold-out), continued pre-training's text and data mixing, the result, and the files a run
leaves in runs/<job>/output."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from forge_mcp.datasets.kinds import DatasetKind, InvalidRow, to_canonical
from forge_mcp.errors import InvalidArguments
from forge_mcp.training.spec import TrainSpec

if TYPE_CHECKING:
    from forge_mcp.training.plan import TrainPlan

HOLDOUT_SHARE = 0.1  # of a dataset without splits, held out when the caller asks for eval_split


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
    method_metrics: dict[str, float] = {}  # the method's own last values: rewards, margins, KL, eval accuracy


def split_rows(dataset_file: Path, split: str) -> list[dict[str, Any]]:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(dataset_file, columns=["row", "split"])
    rows = table.filter(pc.equal(table.column("split"), split)).column("row").to_pylist()
    if not rows:
        raise InvalidArguments(f"split: the dataset has no rows in split {split!r}")
    return [json.loads(r) for r in rows]


def has_splits(dataset_file: Path) -> bool:
    """Prepared datasets carry a split per row; a fresh import has none."""
    import pyarrow.parquet as pq

    return "split" in pq.read_schema(dataset_file).names


def holdout_size(rows: int) -> int:
    """Rows held out of a dataset without splits for evaluation: a tenth, at least one, never all."""
    return min(rows - 1, max(1, round(rows * HOLDOUT_SHARE)))


def holdout_indices(rows: int, holdout: int, seed: int) -> set[int]:
    return set(random.Random(seed).sample(range(rows), holdout))


def select_rows(dataset_file: Path, plan: TrainPlan) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """The training and eval rows of a plan, the same for every backend. A dataset with
    splits gives spec.split and spec.eval_split; one without (a fresh import, rows in their
    source layout) gives every row in canonical form, less plan.holdout_rows drawn by seed
    for evaluation."""
    spec = plan.spec
    if spec.split is not None:
        return split_rows(dataset_file, spec.split), split_rows(dataset_file, spec.eval_split) if spec.eval_split else None
    rows = canonical_rows(dataset_file, plan.dataset_kind)
    if not plan.holdout_rows:
        return rows, None
    held = holdout_indices(len(rows), plan.holdout_rows, spec.seed)
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def canonical_rows(dataset_file: Path, dataset_kind: str | None) -> list[dict[str, Any]]:
    """Every row of a dataset without splits (a fresh import keeps its source layout), in
    canonical form: what training and evaluation read from it."""
    import pyarrow.parquet as pq

    table = pq.read_table(dataset_file, columns=["line", "row"])
    kind = DatasetKind(dataset_kind) if dataset_kind else None
    return [_canonical(line, json.loads(row), kind) for line, row in zip(table.column("line").to_pylist(),
                                                                      table.column("row").to_pylist(), strict=True)]  # fmt: skip


def _canonical(line: str, row: dict[str, Any], kind: DatasetKind | None) -> dict[str, Any]:
    if kind is None:
        return row
    try:
        return to_canonical(row, kind)
    except InvalidRow as exc:  # only in datasets imported before rows were checked at import
        raise InvalidArguments(f"dataset: line {line} does not fit {kind.value} ({exc}); run dataset_prepare, "
                               "which drops such rows, and use its result") from None  # fmt: skip


def prompts_and_references(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chats as GRPO reads them: the turns before each one's last assistant answer are the
    prompt, that answer is the reference the rewards check sampled answers against. A chat
    that opens with its answer has no prompt to sample from, and is left out."""
    out = []
    for row in rows:
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        if last > 0:
            out.append({"prompt": messages[:last], "reference": messages[last].get("content") or ""})
    if not out:
        raise InvalidArguments("dataset: grpo samples answers to the turns before each chat's last assistant answer, "
                               "and no chat here has any; give chats that start with a user turn")  # fmt: skip
    return out


def labeled_answers(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """KTO's rows: single answers with a good/bad label, a pair giving one of each, shuffled by
    seed. KTO reads its rows in order (each row's KL term is estimated against its batch
    neighbours), so an unshuffled list of all the good answers first would train on one kind
    per batch."""
    answers = []
    for row in rows:
        if "label" in row:
            answers.append(row)
            continue
        prompt = row.get("prompt", "" if isinstance(row["chosen"], str) else [])
        answers += [{"prompt": prompt, "completion": row["chosen"], "label": True},
                    {"prompt": prompt, "completion": row["rejected"], "label": False}]  # fmt: skip
    random.Random(seed).shuffle(answers)
    return answers


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
    general = []
    if general_file is not None and spec.mix_ratio > 0:
        general = split_rows(general_file, "train") if has_splits(general_file) else _all_rows(general_file)
    return mix([as_text(r, tokenizer) for r in rows], [as_text(r, tokenizer) for r in general], spec.mix_ratio, spec.seed)


def _all_rows(dataset_file: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return [json.loads(r) for r in pq.read_table(dataset_file, columns=["row"]).column("row").to_pylist()]


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
