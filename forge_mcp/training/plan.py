"""train_plan's arithmetic, instant and without torch: what the base model is (from its
config.json and safetensors headers), which backend runs the spec, how much memory it
needs and roughly how long it takes, and what to change when it does not fit."""

from __future__ import annotations

import json
import math
import platform
import struct
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.datasets.kinds import CANONICAL, DatasetKind
from forge_mcp.errors import InvalidArguments
from forge_mcp.training.spec import DEFAULT_MAX_LENGTH, METHOD_KINDS, TrainSpec

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
SAFETENSORS_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN = 34  # per layer, without recomputation (Korthikanti et al. 2022)
# The interpreter with torch, transformers, peft and trl imported holds 0.47 GiB (measured), the
# worker and its data a little more; CUDA adds its context.
RUNTIME_OVERHEAD_GIB = {"cuda": 1.0, "cpu": 0.55, "mlx": 0.3}
ASSUMED_UTILISATION = 0.3  # share of measured matmul GFLOP/s a training step reaches
# What a step costs besides its matrix multiplies (collation, the optimizer, logging, Python):
# measured on the tiny model, where compute is negligible — 150 CPU steps took 7.2 s.
STEP_OVERHEAD_S = {"cuda": 0.02, "cpu": 0.045, "mlx": 0.02}
MLX_METHODS = ("sft", "cpt")
# Sequences a training row becomes in a step: the chosen and rejected answers of a pair (KTO: the
# answer and a mismatched one for its KL estimate). GRPO's batch already counts sampled answers.
SEQUENCES_PER_ROW = {"dpo": 2, "orpo": 2, "reward": 2, "kto": 2}
# Forward and backward passes a row costs, relative to SFT: pairs twice; GRPO samples its
# answers token by token, then scores and trains on them.
COMPUTE_PER_ROW = {**SEQUENCES_PER_ROW, "grpo": 3}


def needs_reference_model(spec: TrainSpec) -> bool:
    """DPO and KTO compare against the starting model; GRPO only when its KL penalty is on."""
    return spec.method in ("dpo", "kto") or (spec.method == "grpo" and spec.preference_beta > 0)


class BaseModelInfo(BaseModel):
    path: str
    architecture: str
    parameters: int
    hidden_size: int
    layers: int
    vocab_size: int
    max_positions: int | None
    weights_dtype: str


class MemoryEstimate(BaseModel):
    weights_gib: float
    adapter_gib: float
    gradients_gib: float
    optimizer_gib: float
    activations_gib: float
    overhead_gib: float
    total_gib: float
    available_gib: float | None = Field(description="GPU memory (CUDA) or system RAM (CPU, MLX) where it would run; "
                                        "null: not known there")  # fmt: skip
    fits: bool


class TrainPlan(BaseModel):
    spec: TrainSpec
    backend: str = Field(description="hf or mlx")
    device: str = Field(description="cuda, cpu or mlx")
    processes: int = Field(1, description="Data-parallel training processes (torchrun when more than one)")
    dtype: str
    base: BaseModelInfo
    dataset_id: str
    dataset_fingerprint: str
    dataset_kind: str | None = Field(None, description="The dataset's layout; rows of an unprepared one are "
                                     "converted to the canonical form when training reads them")  # fmt: skip
    train_rows: int
    eval_rows: int | None
    holdout_rows: int = Field(0, description="Rows of a dataset without splits held out (chosen by seed) for eval_split")
    general_dataset_id: str | None = None
    general_dataset_fingerprint: str | None = None
    trainable_parameters: int
    steps: int
    tokens: int = Field(description="Estimated training tokens (rows x mean tokens per row x epochs)")
    memory: MemoryEstimate
    estimated_seconds: float | None = Field(description="From system_benchmark's GFLOP/s; null until it has run")
    throughput_source: str
    warnings: list[str]
    suggestions: list[str] = Field(description="What to change when it does not fit or will be slow")
    notes: list[str] = Field(default_factory=list, description="What the plan chose for you: max_length fitted to "
                             "the model, which rows of a dataset without splits it trains and evaluates on")  # fmt: skip
    compute: str = Field("local", description="Where it would run: local (this machine) or a compute target")
    placement: list[str] = Field(default_factory=list, description="Why there: each machine considered, in order")


def read_base_model(folder: Path, shown: str) -> BaseModelInfo:
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise InvalidArguments(f"base_model: {shown} has no config.json; give a Hugging Face model folder")
    config = json.loads(config_path.read_text())
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise InvalidArguments(f"base_model: {shown} has no *.safetensors weights (.bin pickles are not loaded)")
    parameters, dtypes = 0, set()
    for file in weights:
        for name, tensor in _safetensors_header(file).items():
            if name != "__metadata__":
                parameters += math.prod(tensor["shape"])
                dtypes.add(tensor["dtype"])
    text = config.get("text_config", config)
    return BaseModelInfo(
        path=shown,
        architecture=(config.get("architectures") or [config.get("model_type", "unknown")])[0],
        parameters=parameters,
        hidden_size=int(text.get("hidden_size", 0)),
        layers=int(text.get("num_hidden_layers", 0)),
        vocab_size=int(text.get("vocab_size", 0)),
        max_positions=text.get("max_position_embeddings"),
        weights_dtype="/".join(sorted(dtypes)),
    )


def _safetensors_header(file: Path) -> dict[str, Any]:
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        if size > 100 * 2**20:
            raise InvalidArguments(f"base_model: {file.name} has an implausible safetensors header")
        return json.loads(f.read(size))


def choose_backend(spec: TrainSpec, gpus: int, mlx_metal: bool) -> tuple[str, str]:
    """auto on Apple Silicon is mlx for the methods mlx-lm runs, hf (on the CPU) for the others."""
    if spec.backend == "mlx" or (spec.backend == "auto" and mlx_metal and gpus == 0 and spec.method in MLX_METHODS):
        if spec.method not in MLX_METHODS:
            raise InvalidArguments(f"backend: mlx-lm trains {' and '.join(MLX_METHODS)} only, not {spec.method}; use "
                                   "backend hf (or auto), which runs it on this machine's CPU")  # fmt: skip
        if spec.adapter != "lora":
            raise InvalidArguments(f"backend: adapter {spec.adapter} is not supported on mlx yet; use lora or backend hf")
        if spec.devices not in (None, 1):
            raise InvalidArguments("devices: mlx trains in one process; leave devices out or use backend hf")
        if spec.early_stopping_patience is not None or spec.packing or spec.report_to:
            raise InvalidArguments("backend: early_stopping_patience, packing and report_to are hf features; "
                                   "leave them out on mlx or use backend hf")  # fmt: skip
        return "mlx", "mlx"
    return "hf", "cuda" if gpus > 0 else "cpu"


def lora_parameters(config: dict[str, Any], r: int, targets: list[str] | str) -> int:
    """r x (in + out) for each adapted linear layer of a Llama-style block, times layers."""
    text = config.get("text_config", config)
    hidden = int(text["hidden_size"])
    heads = int(text["num_attention_heads"])
    head_dim = int(text.get("head_dim") or hidden // heads)
    kv = int(text.get("num_key_value_heads", heads)) * head_dim
    inter = int(text.get("intermediate_size", 4 * hidden))
    shapes = {"q_proj": (hidden, heads * head_dim), "k_proj": (hidden, kv), "v_proj": (hidden, kv),
              "o_proj": (heads * head_dim, hidden), "gate_proj": (hidden, inter), "up_proj": (hidden, inter),
              "down_proj": (inter, hidden)}  # fmt: skip
    chosen = shapes if targets == "all-linear" else {k: v for k, v in shapes.items() if k in targets}
    return int(text["num_hidden_layers"]) * sum(r * (i + o) for i, o in chosen.values())


def estimate_memory(spec: TrainSpec, base: BaseModelInfo, device: str, dtype: str,
                    trainable: int, available_gib: float | None) -> MemoryEstimate:  # fmt: skip
    """`available_gib` None: not known where it would run (assumed to fit)."""
    weight_bytes = 0.55 if spec.adapter == "qlora" else DTYPE_BYTES[dtype]  # NF4 plus scales and 16-bit norms
    weights = base.parameters * weight_bytes
    adapter = trainable * 4 if spec.adapter != "full" else 0
    grad_bytes = 4 if spec.adapter != "full" else DTYPE_BYTES[dtype]
    gradients = trainable * grad_bytes
    optimizer = trainable * (8 + (4 if spec.adapter == "full" and dtype != "float32" else 0))  # Adam moments (+ fp32 master)
    tokens = spec.batch_size * spec.max_length * SEQUENCES_PER_ROW.get(spec.method, 1)
    per_layer = tokens * base.hidden_size * (2 * DTYPE_BYTES[dtype] if spec.gradient_checkpointing else ACTIVATION_BYTES_PER_TOKEN_PER_HIDDEN)
    logits = tokens * base.vocab_size * 4 * 2  # float32 logits and their gradient
    activations = per_layer * base.layers + logits
    overhead = RUNTIME_OVERHEAD_GIB[device] * GIB
    total = weights + adapter + gradients + optimizer + activations + overhead
    if needs_reference_model(spec) and spec.adapter == "full":
        total += weights  # a frozen reference copy; LoRA uses the base itself (adapter off) as reference
    return MemoryEstimate(
        weights_gib=_gib(weights), adapter_gib=_gib(adapter), gradients_gib=_gib(gradients),
        optimizer_gib=_gib(optimizer), activations_gib=_gib(activations), overhead_gib=_gib(overhead),
        total_gib=_gib(total), available_gib=round(available_gib, 2) if available_gib is not None else None,
        fits=available_gib is None or total <= available_gib * GIB * 0.95,
    )  # fmt: skip


def suggestions(spec: TrainSpec, memory: MemoryEstimate, device: str) -> list[str]:
    out = []
    if memory.fits:
        return out
    if spec.adapter == "full":
        out.append("adapter: lora trains ~1% of the parameters: no full gradients or optimizer state")
    if spec.adapter != "qlora" and device == "cuda":
        out.append("adapter: qlora keeps the base in 4-bit (about a quarter of 16-bit weights)")
    if spec.batch_size > 1:
        out.append(f"batch_size: {max(1, spec.batch_size // 4)} with gradient_accumulation "
                   f"{spec.gradient_accumulation * min(4, spec.batch_size)} keeps the effective batch")  # fmt: skip
    if not spec.gradient_checkpointing:
        out.append("gradient_checkpointing: true recomputes activations instead of storing them")
    if spec.max_length > 512:
        out.append(f"max_length: {spec.max_length // 2} halves activation memory (check truncation with dataset_prepare)")
    return out


def default_dtype(spec: TrainSpec, device: str, bf16_gpu: bool) -> str:
    if spec.dtype != "auto":
        return spec.dtype
    if device == "cuda":
        return "bfloat16" if bf16_gpu else "float16"
    return "float32"


def check_fit(spec: TrainSpec, dataset_kind: str, base: BaseModelInfo) -> list[str]:
    """Problems that make the spec impossible, each naming the field and the fix."""
    problems = []
    kind = _canonical_kind(dataset_kind)
    if kind not in METHOD_KINDS[spec.method]:
        wanted = " or ".join(METHOD_KINDS[spec.method])
        fitting = [m for m, kinds in METHOD_KINDS.items() if kind in kinds]
        problems.append(f"dataset: {spec.method} learns from {wanted} data, and {spec.dataset} is {dataset_kind}; "
                        + (f"use method {' or '.join(fitting)} for it, or " if fitting else "")
                        + f"prepare a {wanted} dataset")  # fmt: skip
    if base.max_positions is not None and spec.max_length > base.max_positions:
        problems.append(f"max_length: {spec.max_length} is over the model's limit of {base.max_positions} positions")
    return problems


def check_batch(spec: TrainSpec, processes: int) -> list[str]:
    """GRPO groups each prompt's sampled answers in one batch: it must hold whole groups."""
    samples = spec.batch_size * spec.gradient_accumulation * processes
    if spec.method != "grpo" or samples % spec.num_generations == 0:
        return []
    return [f"batch_size: grpo samples {spec.num_generations} answers per prompt (num_generations), so batch_size x "
            f"gradient_accumulation x devices ({samples}) must be a multiple of {spec.num_generations}; e.g. batch_size "
            f"{spec.num_generations}"]  # fmt: skip


def fit_max_length(spec: TrainSpec, base: BaseModelInfo, from_caller: bool) -> tuple[TrainSpec, str | None]:
    """The spec with max_length set, and a note when it was lowered. Only a default or a
    recipe's value is lowered to the model's positions: a caller's own value is theirs, and
    check_fit refuses it when it is over."""
    wanted = spec.max_length or DEFAULT_MAX_LENGTH
    limit = base.max_positions
    if from_caller or limit is None or wanted <= limit:
        return spec.model_copy(update={"max_length": wanted}), None
    origin = f"the recipe's {wanted}" if spec.max_length else f"the default {wanted}"
    return spec.model_copy(update={"max_length": limit}), f"max_length set to {limit}, the model's limit ({origin} is over it)"


def _canonical_kind(kind: str) -> str:
    """An imported sharegpt, alpaca or completion dataset trains as the messages it converts to."""
    return CANONICAL[DatasetKind(kind)].value if kind in {k.value for k in DatasetKind} else kind


def mlx_on_metal() -> bool:
    return platform.system() == "Darwin" and platform.machine() == "arm64"


def _gib(value: float) -> float:
    return round(value / GIB, 3)
