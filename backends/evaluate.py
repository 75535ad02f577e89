"""Evaluate a model on a dataset split, inside a job worker (transformers, peft for
adapters): loss and perplexity on the assistant turns, then greedy generation with a fixed
decoding config scored against the reference answers, and optionally graded by an LLM
judge. `compare_models` scores two models on the same rows, one after the other.

Reads top to bottom: rows, load, loss, generate, judge, score.
"""

from __future__ import annotations

import gc
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_mcp.jobs.context import JobContext
from forge_mcp.models.evaluation import Comparison, Decoding, Evaluation, JudgeSummary, chart_png, compare
from forge_mcp.models.judge import FAILURES_KEPT, Judge, JudgeConfig
from forge_mcp.models.scoring import score
from forge_mcp.training.run import canonical_rows, split_rows

__all__ = ["Decoding", "Evaluation", "Target", "compare_models", "evaluate", "evaluation_rows", "score_model"]

EXAMPLES = 3
COMPARE_EXAMPLES = 5
EXAMPLE_CHARS = 200


@dataclass(frozen=True)
class Target:
    """What to load: a model folder, and an adapter over it or not."""

    label: str
    model_path: Path
    adapter_path: Path | None = None


@dataclass
class _Share:
    """One model's share of the job's progress: steps `offset`.. of `total`."""

    job: JobContext
    offset: int
    total: int

    def __call__(self, done: int, message: str) -> None:
        self.job.progress(self.offset + done, self.total, message)
        self.job.check_canceled()


def evaluation_rows(dataset_file: Path, split: str | None, limit: int,
                    dataset_kind: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:  # fmt: skip
    """The split's chat rows that end with an assistant turn (the reference), at most `limit`,
    and notes on what was chosen. Without a split (a dataset without splits) every row, read in
    canonical form as training reads it."""
    rows = split_rows(dataset_file, split) if split else canonical_rows(dataset_file, dataset_kind)
    chats = [r for r in rows if "messages" in r and r["messages"] and r["messages"][-1]["role"] == "assistant"][:limit]
    if split:
        return chats, []
    # Said in the result: a model trained on this dataset without a hold-out has seen these rows.
    return chats, [f"dataset has no splits: evaluated on {len(chats)} of its {len(rows)} rows, which a model trained "
                   "on it may have seen; run dataset_prepare for a held-out test split"]  # fmt: skip


def steps_per_model(rows: list[dict[str, Any]], judge: JudgeConfig | None) -> int:
    return len(rows) * (3 if judge else 2)


def evaluate(job: JobContext, target: Target, dataset_file: Path, dataset_id: str, split: str | None, limit: int,
             decoding: Decoding, judge: JudgeConfig | None = None, dataset_kind: str | None = None) -> Evaluation:  # fmt: skip
    rows, notes = evaluation_rows(dataset_file, split, limit, dataset_kind)
    for note in notes:
        job.log(note)
    share = _Share(job, 0, steps_per_model(rows, judge))
    evaluation = score_model(target, rows, dataset_id, split, decoding, judge, share, examples=EXAMPLES)
    return evaluation.model_copy(update={"notes": notes})


def compare_models(job: JobContext, a: Target, b: Target, dataset_file: Path, dataset_id: str, split: str | None,
                   limit: int, decoding: Decoding, judge: JudgeConfig | None = None,
                   dataset_kind: str | None = None) -> Comparison:  # fmt: skip
    """Both models on the same rows with the same decoding (and judge), then the table and a chart."""
    rows, notes = evaluation_rows(dataset_file, split, limit, dataset_kind)
    for note in notes:
        job.log(note)
    steps = steps_per_model(rows, judge)
    first = score_model(a, rows, dataset_id, split, decoding, judge, _Share(job, 0, 2 * steps), examples=COMPARE_EXAMPLES)
    second = score_model(b, rows, dataset_id, split, decoding, judge, _Share(job, steps, 2 * steps), examples=COMPARE_EXAMPLES)
    first, second = (side.model_copy(update={"notes": notes}) for side in (first, second))
    comparison = compare(first, second, chart=None)
    try:
        png = chart_png(comparison)
    except Exception as exc:  # noqa: BLE001 - a chart is a nicety: the numbers stand without it
        job.log(f"no chart: {type(exc).__name__}: {exc}")
        return comparison
    job.run.chart.write_bytes(png)
    return comparison.model_copy(update={"chart": job.run.shown(job.run.chart)})


def score_model(target: Target, rows: list[dict[str, Any]], dataset_id: str, split: str | None, decoding: Decoding,
                judge: JudgeConfig | None, progress: _Share, *, examples: int) -> Evaluation:  # fmt: skip
    """Load one model, score it on `rows`, and let it go (so a second one fits after it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # -- load -------------------------------------------------------------------------
    tokenizer = AutoTokenizer.from_pretrained(target.adapter_path or target.model_path, local_files_only=True,
                                              trust_remote_code=False)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(target.model_path, local_files_only=True, trust_remote_code=False)
    if target.adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, target.adapter_path)
    model.eval()
    # -- loss -------------------------------------------------------------------------
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for i, row in enumerate(rows):
            encoded = tokenizer.apply_chat_template(row["messages"], return_dict=True, return_assistant_tokens_mask=True,
                                                    return_tensors="pt")  # fmt: skip
            mask = encoded.pop("assistant_masks")
            labels = encoded["input_ids"].masked_fill(mask == 0, -100)
            tokens = int((labels[:, 1:] != -100).sum())
            if tokens:
                total_loss += float(model(**encoded, labels=labels).loss) * tokens
                total_tokens += tokens
            if i % 20 == 0:
                progress(i, f"{target.label}: loss on the assistant turns")
    loss = total_loss / max(total_tokens, 1)
    # -- generate ---------------------------------------------------------------------
    predictions, references = [], []
    with torch.no_grad():
        for i, row in enumerate(rows):
            prompt = tokenizer.apply_chat_template(row["messages"][:-1], add_generation_prompt=True, return_dict=True,
                                                   return_tensors="pt")  # fmt: skip
            out = model.generate(**prompt, max_new_tokens=decoding.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
            predictions.append(tokenizer.decode(out[0][prompt["input_ids"].shape[1] :], skip_special_tokens=True).strip())
            references.append(row["messages"][-1]["content"])
            if i % 10 == 0:
                progress(len(rows) + i, f"{target.label}: generating answers")
    del model
    gc.collect()
    # -- judge ------------------------------------------------------------------------
    metrics = score(predictions, references)
    verdicts: list[str] = []
    summary = None
    if judge is not None:
        grades = []
        with Judge(judge) as client:
            for i, (row, reference, prediction) in enumerate(zip(rows, references, predictions, strict=True)):
                grades.append(client.grade(row["messages"][:-1], reference, prediction))
                if i % 5 == 0:
                    progress(2 * len(rows) + i, f"{target.label}: the judge grades the answers")
        scored = [g.normalised for g in grades if g.normalised is not None]
        failures = [f"row {i}: {g.reason}" for i, g in enumerate(grades) if g.score is None]
        if scored:
            metrics["judge_score"] = round(sum(scored) / len(scored), 4)
        metrics["judge_failures"] = float(len(failures))
        summary = JudgeSummary(model=judge.model, graded=len(scored), failures=len(failures),
                               failure_reasons=failures[:FAILURES_KEPT])  # fmt: skip
        verdicts = [f"{g.score:g}/5: {g.reason}" if g.score is not None else f"no score: {g.reason}" for g in grades]
    # -- score ------------------------------------------------------------------------
    shown = []
    for i, (row, reference, prediction) in enumerate(list(zip(rows, references, predictions, strict=True))[:examples]):
        example = {"prompt": _cut(row["messages"][-2]["content"] if len(row["messages"]) > 1 else ""),
                   "reference": _cut(reference), "prediction": _cut(prediction)}  # fmt: skip
        if verdicts:
            example["judge"] = _cut(verdicts[i])
        shown.append(example)
    return Evaluation(
        model=target.label, dataset_id=dataset_id, split=split, rows=len(rows), loss=round(loss, 4),
        perplexity=round(math.exp(min(loss, 50.0)), 3), metrics=metrics, decoding=decoding, examples=shown, judge=summary,
    )  # fmt: skip


def _cut(text: str) -> str:
    return text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS] + "…"
