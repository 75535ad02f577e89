"""The mlx training recipe (Apple Silicon; mlx also runs on Linux CPU), inside a job worker:
mlx-lm's model loading, LoRA layers, datasets, batching and loss, in a loop of our own so
that a checkpoint holds everything exact resume needs — adapter weights, optimizer state,
the random state and the step (the batch order is a function of the seed, so the data
position is the step). SFT (loss on the last assistant turn) and CPT; LoRA only.

Reads top to bottom: setup, train, save, cleanup.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.context import JobContext
from forge_mcp.training.checkpoints import newest_verified, save_interval, write_manifest
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.run import TrainResult, as_text, cpt_rows, select_rows, write_outputs

ATTENTION_AND_MLP = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                     "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")  # fmt: skip


def train(job: JobContext, plan: TrainPlan, base_path: Path, dataset_file: Path, general_file: Path | None = None) -> TrainResult:
    import mlx.core as mx
    import mlx.nn as nn
    import mlx.optimizers as optim
    from mlx.utils import tree_flatten, tree_unflatten
    from mlx_lm import load
    from mlx_lm.tuner.datasets import ChatDataset, TextDataset
    from mlx_lm.tuner.trainer import default_loss, evaluate, iterate_batches
    from mlx_lm.tuner.utils import linear_to_lora_layers

    spec = plan.spec
    if spec.method not in ("sft", "cpt") or spec.adapter != "lora":
        raise InvalidArguments("backend: mlx trains sft and cpt with lora; use backend hf for dpo, qlora or full")
    # -- setup ------------------------------------------------------------------------
    mx.random.seed(spec.seed)
    model, tokenizer = load(str(base_path))
    train_rows, selected_eval = select_rows(dataset_file, plan)
    eval_rows = selected_eval or []
    if spec.method == "cpt":
        train_rows = cpt_rows(spec, train_rows, general_file, tokenizer)
        eval_rows = [as_text(r, tokenizer) for r in eval_rows]
    train_set, eval_set = (_tokenised(rows, tokenizer, spec.method, ChatDataset, TextDataset) for rows in (train_rows, eval_rows))
    if len(train_set) < spec.batch_size:
        raise InvalidArguments(f"batch_size: {spec.batch_size} is more than the {len(train_set)} training rows")
    eval_batch = max(1, min(spec.batch_size, len(eval_set)))  # mlx-lm refuses an eval set smaller than a batch
    model.freeze()
    keys = ATTENTION_AND_MLP if spec.lora_target_modules == "all-linear" else tuple(
        k for k in ATTENTION_AND_MLP if k.split(".")[-1] in spec.lora_target_modules)  # fmt: skip
    lora = {"rank": spec.lora_r, "scale": spec.lora_alpha / spec.lora_r, "dropout": spec.lora_dropout, "keys": list(keys)}
    linear_to_lora_layers(model, len(model.layers), lora)
    total = plan.steps
    optimizer = optim.AdamW(learning_rate=_schedule(spec, total, optim), weight_decay=spec.weight_decay)
    value_and_grad = nn.value_and_grad(model, default_loss)
    # -- resume -----------------------------------------------------------------------
    start, resume = 0, next(filter(None, map(newest_verified, job.checkpoint_dirs())), None) if job.resuming else None
    optimizer.init(model.trainable_parameters())
    if resume is not None:
        model.load_weights(str(resume / "adapters.safetensors"), strict=False)
        optimizer.state = tree_unflatten(list(mx.load(str(resume / "optimizer.safetensors")).items()))
        high, low = (int(v) for v in mx.load(str(resume / "random.safetensors"))["key"].tolist())
        mx.random.seed((high << 32) | low)  # seed(s) sets the key to [s >> 32, s & 0xffffffff]
        start = json.loads((resume / "state.json").read_text())["step"]
        job.log(f"resuming from {resume.name}")
    batches = iterate_batches(train_set, spec.batch_size, spec.max_length, loop=True, seed=spec.seed)
    for _ in range(start * spec.gradient_accumulation):
        next(batches)  # the data position: the same batches in the same order, skipped
    # -- train ------------------------------------------------------------------------
    base_eval = None
    if eval_set and resume is None:  # the base model on held-out data: what fine-tuning must beat
        base_eval = evaluate(model, eval_set, eval_batch, -1, spec.max_length)
        job.metric("eval_loss", 0, base_eval)
    model.train()
    started = time.perf_counter()
    window = {"loss": 0.0, "tokens": 0, "steps": 0, "since": time.perf_counter(), "grad_norm": 0.0}
    first_loss = last_loss = best_eval = None
    all_tokens = 0
    for step in range(start + 1, total + 1):
        job.check_canceled()
        grads = None
        for _ in range(spec.gradient_accumulation):
            (loss, tokens), micro = value_and_grad(model, *next(batches))
            grads = micro if grads is None else _add(grads, micro)
            window["loss"] += loss.item() / spec.gradient_accumulation
            window["tokens"] += tokens.item()
        if spec.gradient_accumulation > 1:
            grads = _scale(grads, 1 / spec.gradient_accumulation)
        grads, norm = optim.clip_grad_norm(grads, spec.max_grad_norm)
        optimizer.update(model, grads)
        mx.eval(model.trainable_parameters(), optimizer.state)
        window["grad_norm"] = norm.item()
        window["steps"] += 1
        if step % spec.logging_steps == 0 or step == total:
            loss_now = window["loss"] / window["steps"]
            first_loss = loss_now if first_loss is None else first_loss
            last_loss = loss_now
            elapsed = time.perf_counter() - window["since"]
            all_tokens += int(window["tokens"])
            job.metric("loss", step, loss_now)
            job.metric("learning_rate", step, optimizer.learning_rate.item())
            job.metric("grad_norm", step, window["grad_norm"])
            job.metric("tokens_per_s", step, window["tokens"] / max(elapsed, 1e-9))
            job.metric("memory_gib", step, mx.get_peak_memory() / 1024**3)
            remaining = (time.perf_counter() - started) / (step - start) * (total - step)
            job.progress(step, total, f"step {step}/{total}, loss {loss_now:.4f}, ETA {remaining:.0f} s")
            if not math.isfinite(loss_now):
                raise InvalidArguments("learning_rate: training diverged (the loss became NaN); lower it and start again")
            window = {"loss": 0.0, "tokens": 0, "steps": 0, "since": time.perf_counter(), "grad_norm": 0.0}
        if eval_set and spec.eval_split and step % (spec.eval_steps or spec.logging_steps * 2) == 0:
            eval_loss = evaluate(model, eval_set, eval_batch, -1, spec.max_length)
            model.train()
            job.metric("eval_loss", step, eval_loss)
            best_eval = eval_loss if best_eval is None else min(best_eval, eval_loss)
        if step % save_interval(spec.save_steps, total) == 0 and step < total:
            _save_checkpoint(job.checkpoint_dir / f"checkpoint-{step}", model, optimizer, step, mx, tree_flatten)
    runtime = time.perf_counter() - started
    final_eval = evaluate(model, eval_set, eval_batch, -1, spec.max_length) if eval_set else None
    if final_eval is not None:
        job.metric("eval_loss", total, final_eval)
        best_eval = final_eval if best_eval is None else min(best_eval, final_eval)
    # -- save -------------------------------------------------------------------------
    output = job.run.output
    adapter_dir = output / "adapter"
    adapter_dir.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(adapter_dir / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    (adapter_dir / "adapter_config.json").write_text(json.dumps(
        {"fine_tune_type": "lora", "num_layers": len(model.layers), "lora_parameters": lora, "format": "mlx-lm"}, indent=2))  # fmt: skip
    result = TrainResult(
        output=job.run.shown(output), adapter=job.run.shown(adapter_dir),
        method=spec.method, steps=total, final_loss=last_loss, first_loss=first_loss, best_eval_loss=best_eval,
        base_eval_loss=base_eval, final_eval_loss=final_eval, train_runtime_s=round(runtime, 2),
        tokens_per_second=round(all_tokens / runtime, 1) if runtime > 0 else None,
        resumed_from=resume.name if resume else None, base_quantized_4bit=False, train_rows=len(train_set),
        dataset_fingerprint=plan.dataset_fingerprint, warnings=[],
    )  # fmt: skip
    write_outputs(output, spec, result, ("mlx", "mlx-lm", "transformers"))
    # -- cleanup ----------------------------------------------------------------------
    del model, optimizer
    return result


def _tokenised(rows: list[dict[str, Any]], tokenizer: Any, method: str, chat: Any, text: Any) -> list[tuple[list[int], int]]:
    if not rows:
        return []
    dataset = chat(rows, tokenizer, mask_prompt=True) if method == "sft" else text(rows, tokenizer)
    return [dataset.process(dataset[i]) for i in range(len(dataset))]


def _schedule(spec: Any, total: int, optim: Any) -> Any:
    warmup = int(spec.warmup_ratio * total)
    if spec.scheduler == "cosine":
        decay = optim.cosine_decay(spec.learning_rate, max(1, total - warmup))
    elif spec.scheduler == "linear":
        decay = optim.linear_schedule(spec.learning_rate, 0.0, max(1, total - warmup))
    else:
        decay = spec.learning_rate
    if warmup == 0:
        return decay
    ramp = optim.linear_schedule(0.0, spec.learning_rate, warmup)
    return optim.join_schedules([ramp, decay if callable(decay) else (lambda _: decay)], [warmup])


def _add(a: Any, b: Any) -> Any:
    from mlx.utils import tree_map

    return tree_map(lambda x, y: x + y, a, b)


def _scale(a: Any, factor: float) -> Any:
    from mlx.utils import tree_map

    return tree_map(lambda x: x * factor, a)


def _save_checkpoint(folder: Path, model: Any, optimizer: Any, step: int, mx: Any, tree_flatten: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(folder / "adapters.safetensors"), dict(tree_flatten(model.trainable_parameters())))
    mx.save_safetensors(str(folder / "optimizer.safetensors"), dict(tree_flatten(optimizer.state)))
    mx.save_safetensors(str(folder / "random.safetensors"), {"key": mx.random.state[0]})
    (folder / "state.json").write_text(json.dumps({"step": step}))
    write_manifest(folder, step)
