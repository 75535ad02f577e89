"""Training: plan a run (instant dry run) and start it as a job."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
from pathlib import Path
from typing import Annotated, Any

import psutil
from pydantic import Field

from forge_mcp.backends.hardware import probe_hardware
from forge_mcp.capabilities import Toolset
from forge_mcp.datasets.models import DatasetInfo
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.principal import Principal
from forge_mcp.services import Services
from forge_mcp.training.plan import (
    ASSUMED_UTILISATION,
    TrainPlan,
    check_fit,
    choose_backend,
    default_dtype,
    estimate_memory,
    lora_parameters,
    mlx_on_metal,
    read_base_model,
    suggestions,
)  # fmt: skip
from forge_mcp.training.spec import TrainSpec, list_recipes, resolve_spec

toolset = Toolset("training", "Plan and run SFT, DPO and continued pre-training with LoRA, QLoRA or full fine-tuning.")
CHARS_PER_TOKEN = 4.0  # for the time estimate only; train_start counts real tokens
SAMPLE_ROWS = 200

SpecFields = Annotated[
    dict[str, Any],
    Field(description="Training spec fields (see the TrainSpec fields in train_plan's output); at least base_model "
                      "and dataset. They override the recipe's."),  # fmt: skip
]
Recipe = Annotated[str | None, Field(max_length=64, description="Preset from configs/recipes, e.g. sft-lora, sft-lora-tiny, qlora, dpo-lora, cpt-lora")]  # fmt: skip


async def build_plan(services: Services, fields: dict[str, Any], recipe: str | None) -> TrainPlan:
    spec = resolve_spec(fields, recipe)
    base_path = services.workspace.resolve(spec.base_model, field="spec.base_model")
    if not base_path.is_dir():
        raise InvalidArguments(f"spec.base_model: {spec.base_model} is not a folder; give a local Hugging Face model folder")
    dataset = await services.datasets.repo.get(spec.dataset)
    base = await asyncio.to_thread(read_base_model, base_path, spec.base_model)
    problems = check_fit(spec, dataset.kind, base)
    general = await services.datasets.repo.get(spec.general_dataset) if spec.general_dataset else None
    if general is not None and general.kind not in ("text", "messages"):
        problems.append(f"general_dataset: {general.id} is {general.kind}; mix in text or messages data")
    if general is not None and "train" not in (general.report.get("splits") or {}):
        problems.append(f"general_dataset: {general.id} has no train split; run dataset_prepare on it first")
    splits = dataset.report.get("splits") or {}
    for field, split in (("split", spec.split), ("eval_split", spec.eval_split)):
        if split is not None and split not in splits:
            problems.append(f"{field}: {dataset.id} has no split {split!r}; its splits are {', '.join(splits) or 'none'} "
                            "(dataset_prepare makes them)")  # fmt: skip
    for tracker in spec.report_to:
        if importlib.util.find_spec(tracker) is None:
            problems.append(f"report_to: {tracker} is not installed; pip install {tracker}, or leave it out (metrics are always in job_metrics)")
    if problems:
        raise InvalidArguments("; ".join(problems))
    hardware = await asyncio.to_thread(probe_hardware, services.workspace.root)
    backend, device = choose_backend(spec, len(hardware.gpus), mlx_on_metal() and hardware.mlx.can_run)
    dtype = default_dtype(spec, device, bf16_gpu=any(_bf16(g.compute_capability) for g in hardware.gpus))
    config = json.loads((base_path / "config.json").read_text())
    trainable = base.parameters if spec.adapter == "full" else lora_parameters(config, spec.lora_r, spec.lora_target_modules)
    available = hardware.gpus[0].memory_total_gib if device == "cuda" else psutil.virtual_memory().available / 1024**3
    memory = estimate_memory(spec, base, device, dtype, trainable, available)
    rows = int(splits[spec.split])
    steps = spec.max_steps or max(1, math.ceil(rows * spec.epochs / (spec.batch_size * spec.gradient_accumulation)))
    mean_tokens = min(spec.max_length, await asyncio.to_thread(_mean_chars, services.workspace.root / dataset.path, spec.split) / CHARS_PER_TOKEN)
    tokens = int(steps * spec.batch_size * spec.gradient_accumulation * mean_tokens)
    seconds, source = await _time_estimate(services, base.parameters, trainable, spec, tokens, device)
    warnings = []
    if rows < spec.batch_size * spec.gradient_accumulation:
        warnings.append(f"batch_size x gradient_accumulation ({spec.batch_size * spec.gradient_accumulation}) exceeds the {rows} training rows")
    if "wandb" in spec.report_to:
        warnings.append("report_to wandb uploads metrics to wandb.ai unless WANDB_MODE=offline is set for the server")
    if spec.adapter == "qlora" and device == "cpu":
        warnings.append("qlora on CPU runs (bitsandbytes) but slowly; it saves memory, not time")
    return TrainPlan(
        spec=spec, backend=backend, device=device, dtype=dtype, base=base, dataset_id=dataset.id,
        dataset_fingerprint=dataset.fingerprint, train_rows=rows,
        general_dataset_id=general.id if general else None, general_dataset_fingerprint=general.fingerprint if general else None,
        eval_rows=int(splits[spec.eval_split]) if spec.eval_split else None, trainable_parameters=trainable,
        steps=steps, tokens=tokens, memory=memory, estimated_seconds=seconds, throughput_source=source,
        warnings=warnings, suggestions=suggestions(spec, memory, device),
    )  # fmt: skip


def _bf16(capability: str | None) -> bool:
    return capability is not None and float(capability) >= 8.0


def _mean_chars(folder: Path, split: str) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.ParquetFile(folder / "data.parquet").read_row_group(0, columns=["row", "split"])
    rows = table.filter(pc.equal(table.column("split"), split)).column("row").to_pylist()[:SAMPLE_ROWS]
    return sum(len(r) for r in rows) / len(rows) if rows else 512.0


async def _time_estimate(services: Services, parameters: int, trainable: int, spec: TrainSpec, tokens: int,
                         device: str) -> tuple[float | None, str]:  # fmt: skip
    benchmark = await services.jobs.repo.latest_result("system_benchmark")
    if benchmark is None or benchmark.result is None:
        return None, "no system_benchmark yet: run it for a time estimate"
    wanted = "cuda:0" if device == "cuda" else "cpu"
    gflops = next((m.get("gflops") for m in benchmark.result.get("matmul", []) if m.get("device") == wanted), None)
    if not gflops:
        return None, f"system_benchmark has no {wanted} figure"
    # Forward and backward through the whole model; weight gradients only for what trains.
    flops = tokens * (4 * parameters + 2 * trainable) * (2 if spec.method == "dpo" else 1)
    return round(flops / (gflops * 1e9 * ASSUMED_UTILISATION), 1), f"system_benchmark {benchmark.id}: {gflops} GFLOP/s on {wanted}, {ASSUMED_UTILISATION:.0%} utilisation assumed"


@toolset.capability(scope="read", title="Plan a training run")
async def train_plan(services: Services, spec: SpecFields, recipe: Recipe = None) -> TrainPlan:
    """Dry run, instant: validates a training spec (every problem at once), checks that the
    dataset's kind fits the method (sft: messages, dpo: preference, cpt: text or messages)
    and that its splits exist, picks the backend (CUDA -> hf, Apple Silicon -> mlx,
    otherwise hf on CPU), and estimates peak memory (weights, adapter, gradients,
    optimizer, activations) and time. When it will not fit, `suggestions` says what to
    change. Recipes: """
    return await build_plan(services, spec, recipe)


train_plan.__doc__ = (train_plan.__doc__ or "") + ", ".join(list_recipes()) + "."


def _train_resources(arguments: dict[str, Any]) -> Resources:
    plan = TrainPlan.model_validate(arguments["plan"])
    return Resources(gpus=1 if plan.device == "cuda" else 0, memory_gb=plan.memory.total_gib)


@toolset.job_kind("train", resources=_train_resources, checkpoints=True)
def train_job(job: JobContext, plan: dict[str, Any], base_path: str, dataset_path: str, general_path: str | None = None) -> Any:
    resolved = TrainPlan.model_validate(plan)
    if resolved.backend == "mlx":
        from forge_mcp.backends.mlx_train import train
    else:
        from forge_mcp.backends.hf_train import train
    general = job.workspace_root / general_path / "data.parquet" if general_path else None
    return train(job, resolved, job.workspace_root / base_path, job.workspace_root / dataset_path / "data.parquet", general)


@toolset.capability(scope="train", title="Start training", long_running=True)
async def train_start(
    services: Services,
    principal: Principal,
    spec: SpecFields,
    recipe: Recipe = None,
    priority: Annotated[int, Field(ge=-100, le=100)] = 0,
    idempotency_key: Annotated[str | None, Field(max_length=128)] = None,
) -> JobHandle:
    """Starts a training job from the same spec train_plan checks (call train_plan first to
    see memory and time). Metrics every logging_steps (loss, learning rate, grad norm,
    tokens/s, eval loss, memory), progress with an ETA, warnings for divergence and
    overfitting, verified checkpoints; job_resume and crash recovery continue from the
    newest checkpoint. The result names the adapter (or model) folder. Follow with job_wait."""
    plan = await build_plan(services, spec, recipe)
    require_extra("mlx" if plan.backend == "mlx" else "train", f"train_start on the {plan.backend} backend")
    if not plan.memory.fits:
        raise InvalidArguments(f"spec: needs about {plan.memory.total_gib} GiB but {plan.memory.available_gib} GiB are "
                               "available; " + "; ".join(plan.suggestions))  # fmt: skip
    dataset: DatasetInfo = await services.datasets.repo.get(plan.dataset_id)
    base = services.workspace.resolve(plan.spec.base_model, field="spec.base_model")
    general = await services.datasets.repo.get(plan.general_dataset_id) if plan.general_dataset_id else None
    arguments = {"plan": plan.model_dump(mode="json"), "base_path": _inside(services, base), "dataset_path": dataset.path,
                 "general_path": general.path if general else None}  # fmt: skip
    return await services.jobs.submit("train", arguments, principal.name, priority=priority, idempotency_key=idempotency_key)


def _inside(services: Services, path: Path) -> str:
    root = services.workspace.root
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
