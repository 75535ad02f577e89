"""Gathering what a training plan needs — the spec, the base model, the dataset and its
splits, the hardware, the newest system benchmark — and handing it to the arithmetic in
plan.py. train_plan returns the result; train_start runs it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.constants import LOCAL_TARGET
from forge_mcp.jobs.repository import JobRepository
from forge_mcp.models.judge_settings import checked_judge
from forge_mcp.training.machines import Machine, this_machine
from forge_mcp.training.plan import (
    ASSUMED_UTILISATION,
    COMPUTE_PER_ROW,
    STEP_OVERHEAD_S,
    TrainPlan,
    check_batch,
    check_fit,
    choose_backend,
    default_dtype,
    estimate_memory,
    fit_max_length,
    lora_parameters,
    read_base_model,
    suggestions,
)  # fmt: skip
from forge_mcp.training.run import holdout_size
from forge_mcp.training.spec import DEFAULT_MAX_LENGTH, TrainSpec, resolve_spec
from forge_mcp.workspace import Workspace

CHARS_PER_TOKEN = 4.0  # for the time estimate only; train_start counts real tokens
SAMPLE_ROWS = 200


async def plan_training(workspace: Workspace, datasets: DatasetRepository, jobs: JobRepository, fields: dict[str, Any],
                        recipe: str | None, machine: Machine | None = None) -> TrainPlan:  # fmt: skip
    """`jobs` only for the newest system_benchmark (the time estimate); `machine`: where it would
    run (default this machine, measured now)."""
    spec = await _checked_judges(resolve_spec(fields, recipe))
    base_path = await asyncio.to_thread(workspace.resolve_tree, spec.base_model, field="spec.base_model")
    if not base_path.is_dir():
        raise InvalidArguments(f"spec.base_model: {spec.base_model} is not a folder; give a local Hugging Face model folder")
    # Kept as clients see it (relative inside the workspace), however it was given: it is shown and stored.
    spec = spec.model_copy(update={"base_model": workspace.shown(base_path)})
    dataset = await datasets.get(spec.dataset)
    base = await asyncio.to_thread(read_base_model, base_path, spec.base_model)
    spec, fitted = fit_max_length(spec, base, from_caller=fields.get("max_length") is not None)
    notes = [fitted] if fitted else []
    problems = check_fit(spec, dataset.kind, base)
    general = await datasets.get(spec.general_dataset) if spec.general_dataset else None
    if general is not None and general.kind not in ("text", "messages"):
        problems.append(f"general_dataset: {general.id} is {general.kind}; mix in text or messages data")
    general_splits = general.report.get("splits") if general is not None else None
    if general_splits and "train" not in general_splits:  # without splits, every row is mixed in
        problems.append(f"general_dataset: {general.id} has no train split; its splits are {', '.join(general_splits)}")
    splits = dataset.report.get("splits") or {}
    if splits:
        spec = spec.model_copy(update={"split": spec.split or "train"})
        for field, split in (("split", spec.split), ("eval_split", spec.eval_split)):
            if split is not None and split not in splits:
                problems.append(f"{field}: {dataset.id} has no split {split!r}; its splits are {', '.join(splits)} "
                                "(dataset_prepare makes them)")  # fmt: skip
        holdout = 0
    else:
        holdout = _unsplit_rows(spec, dataset.id, dataset.rows, problems, notes)
    for tracker in spec.report_to:
        if importlib.util.find_spec(tracker) is None:
            problems.append(f"report_to: {tracker} is not installed; pip install {tracker}, or leave it out (metrics are always in job_metrics)")
    if problems:
        raise InvalidArguments("; ".join(problems))
    if machine is None:
        machine = await asyncio.to_thread(this_machine, workspace.root)
    where = "here" if machine.name == LOCAL_TARGET else f"on {machine.name}"
    backend, device = choose_backend(spec, machine.gpus, machine.mlx_metal)
    processes = spec.devices or (machine.gpus if device == "cuda" else 1)
    if device == "cuda" and processes > machine.gpus:
        raise InvalidArguments(f"devices: {processes} asked, {machine.gpus} GPU(s) {where}")
    if problems := check_batch(spec, processes):
        raise InvalidArguments("; ".join(problems))
    dtype = default_dtype(spec, device, bf16_gpu=machine.bf16)
    config = json.loads((base_path / "config.json").read_text())
    trainable = base.parameters if spec.adapter == "full" else lora_parameters(config, spec.lora_r, spec.lora_target_modules)
    gpu_memory = machine.gpu_memory_gib[0] if device == "cuda" else None
    if device == "cuda" and gpu_memory is None:
        notes.append(f"GPU memory {where} is not known (a Ray cluster reports GPU counts only): the fit is not checked")
    available = gpu_memory if device == "cuda" else machine.memory_gib
    memory = estimate_memory(spec, base, device, dtype, trainable, available)
    rows = int(splits[spec.split]) if spec.split else dataset.rows - holdout
    eval_rows = int(splits[spec.eval_split]) if splits and spec.eval_split else holdout or None
    samples = rows * (spec.num_generations if spec.method == "grpo" else 1)  # GRPO trains on each prompt's answers
    steps = spec.max_steps or max(1, math.ceil(samples * spec.epochs / (spec.batch_size * spec.gradient_accumulation * processes)))
    # Checked like every other reader of a dataset folder: a file in it that links out is refused, not read.
    folder = await asyncio.to_thread(workspace.resolve_tree, dataset.path, field="dataset")
    mean_tokens = min(spec.max_length or DEFAULT_MAX_LENGTH, await asyncio.to_thread(_mean_chars, folder, spec.split) / CHARS_PER_TOKEN)
    tokens = int(steps * spec.batch_size * spec.gradient_accumulation * processes * mean_tokens)
    seconds, source = await _time_estimate(jobs, base.parameters, trainable, spec, tokens, steps, device)
    warnings = []
    if rows < spec.batch_size * spec.gradient_accumulation:
        warnings.append(f"batch_size x gradient_accumulation ({spec.batch_size * spec.gradient_accumulation}) exceeds the {rows} training rows")
    if processes > 1 and device == "cpu":
        warnings.append(f"{processes} CPU processes share the same cores: data parallelism on CPU rarely speeds training up")
    if "wandb" in spec.report_to:
        warnings.append("report_to wandb uploads metrics to wandb.ai unless WANDB_MODE=offline is set for the server")
    if spec.adapter == "qlora" and device == "cpu":
        warnings.append("qlora on CPU runs (bitsandbytes) but slowly; it saves memory, not time")
    return TrainPlan(
        spec=spec, backend=backend, device=device, processes=processes, dtype=dtype, base=base, dataset_id=dataset.id,
        dataset_fingerprint=dataset.fingerprint, dataset_kind=dataset.kind, train_rows=rows, holdout_rows=holdout,
        general_dataset_id=general.id if general else None, general_dataset_fingerprint=general.fingerprint if general else None,
        eval_rows=eval_rows, trainable_parameters=trainable,
        steps=steps, tokens=tokens, memory=memory, estimated_seconds=seconds, throughput_source=source,
        warnings=warnings, suggestions=suggestions(spec, memory, device), notes=notes,
    )  # fmt: skip


async def _checked_judges(spec: TrainSpec) -> TrainSpec:
    """An llm_judge reward's endpoint is checked as model_evaluate checks its judge: the URL
    against private ranges, the key only as the name of a variable that is set."""
    rewards = []
    for reward in spec.rewards:
        if reward.name == "llm_judge":
            judge = await checked_judge(reward.judge_url, reward.judge_model, reward.judge_api_key_env)
            reward = reward.model_copy(update={"judge_url": judge.url if judge else None})
        rewards.append(reward)
    return spec.model_copy(update={"rewards": rewards})


def _unsplit_rows(spec: TrainSpec, dataset_id: str, rows: int, problems: list[str], notes: list[str]) -> int:
    """A dataset without splits (a fresh import) trains on every row; asked for eval_split,
    it holds out a seeded share. Returns how many rows are held out; says so in notes."""
    if spec.split is not None:
        problems.append(f"split: {dataset_id} has no splits (it was imported, not prepared); leave split out to train "
                        f"on all {rows} rows, or run dataset_prepare on it to make train and test splits")  # fmt: skip
    if spec.eval_split is None:
        notes.append(f"dataset has no splits: training on all {rows} rows")
        return 0
    if rows < 2:
        problems.append(f"eval_split: {dataset_id} has {rows} row and no splits; there is nothing to hold out for "
                        "evaluation, leave eval_split out")  # fmt: skip
        return 0
    holdout = holdout_size(rows)
    notes.append(f"dataset has no splits: holding out {holdout} of {rows} rows (seed {spec.seed}) for evaluation as "
                 f"{spec.eval_split!r}, training on the other {rows - holdout}")  # fmt: skip
    return holdout



def _mean_chars(folder: Path, split: str | None) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.ParquetFile(folder / "data.parquet").read_row_group(0, columns=["row"] + (["split"] if split else []))
    if split is not None:
        table = table.filter(pc.equal(table.column("split"), split))
    rows = table.column("row").to_pylist()[:SAMPLE_ROWS]
    return sum(len(r) for r in rows) / len(rows) if rows else 512.0


async def _time_estimate(jobs: JobRepository, parameters: int, trainable: int, spec: TrainSpec, tokens: int,
                         steps: int, device: str) -> tuple[float | None, str]:  # fmt: skip
    benchmark = await jobs.latest_result("system_benchmark")
    if benchmark is None or benchmark.result is None:
        return None, "no system_benchmark yet: run it for a time estimate"
    wanted = "cuda:0" if device == "cuda" else "cpu"
    gflops = next((m.get("gflops") for m in benchmark.result.get("matmul", []) if m.get("device") == wanted), None)
    if not gflops:
        return None, f"system_benchmark has no {wanted} figure"
    # Forward and backward through the whole model; weight gradients only for what trains.
    flops = tokens * (4 * parameters + 2 * trainable) * COMPUTE_PER_ROW.get(spec.method, 1)
    overhead = steps * spec.gradient_accumulation * STEP_OVERHEAD_S[device]
    seconds = flops / (gflops * 1e9 * ASSUMED_UTILISATION) + overhead
    return round(seconds, 1), (f"system_benchmark {benchmark.id}: {gflops} GFLOP/s on {wanted} at an assumed "
                               f"{ASSUMED_UTILISATION:.0%} utilisation, plus {STEP_OVERHEAD_S[device]} s per step")  # fmt: skip
