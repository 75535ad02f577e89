"""The hf training recipe, run inside a job worker: transformers + peft + trl.

Reads top to bottom: setup (data, tokenizer, model, adapter), train (with metrics,
progress, divergence checks and verified checkpoints), save (adapter or weights, the
resolved spec, a summary, the environment), cleanup.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from forge_mcp.backends.hf_speed import lean
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.context import JobContext
from forge_mcp.training.checkpoints import newest_verified, save_interval, write_manifest
from forge_mcp.training.plan import TrainPlan
from forge_mcp.training.run import (
    TrainResult,
    as_text,
    cpt_rows,
    labeled_answers,
    prompts_and_references,
    select_rows,
    write_outputs,
)

HF_PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")
DIVERGENCE_FACTOR = 4.0  # a logged loss this many times the first one is an explosion
# TRL's log keys -> job metrics. Every method logs loss, learning rate and grad norm; the
# preference methods their rewards, margins and log-probabilities; GRPO its reward (each
# function's as reward_<name>) and KL; a reward model its ranking accuracy. Eval keys keep eval_.
METRIC_NAMES = {
    "loss": "loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm",
    "rewards/accuracies": "reward_accuracy", "rewards/margins": "reward_margin", "rewards/chosen": "chosen_reward",
    "rewards/rejected": "rejected_reward", "logps/chosen": "chosen_logps", "logps/rejected": "rejected_logps",
    "kl": "kl", "nll_loss": "nll_loss", "log_odds_ratio": "log_odds_ratio",
    "reward": "reward", "reward_std": "reward_std", "completions/mean_length": "completion_length",
    "accuracy": "reward_accuracy", "margin": "reward_margin", "mean_reward": "mean_reward",
}  # fmt: skip
COMMON_METRICS = frozenset({"loss", "learning_rate", "grad_norm", "eval_loss"})


def metric_name(key: str) -> str | None:
    """The job metric a trainer log key is reported as; None for keys not reported."""
    if key == "eval_loss":
        return key
    evaluated = key.startswith("eval_")
    key = key.removeprefix("eval_")
    if key.startswith("rewards/") and key.endswith("/mean"):  # GRPO: one reward function's mean
        name = "reward_" + key.removeprefix("rewards/").removesuffix("/mean")
    else:
        name = METRIC_NAMES.get(key)
    if name is None:
        return None
    return f"eval_{name}" if evaluated else name


def train(job: JobContext, plan: TrainPlan, base_path: Path, dataset_file: Path, general_file: Path | None = None) -> TrainResult:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

    spec = plan.spec
    set_seed(spec.seed)
    # -- setup ------------------------------------------------------------------------
    train_rows, eval_rows = select_rows(dataset_file, plan)
    tokenizer = AutoTokenizer.from_pretrained(base_path, local_files_only=True, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.method == "cpt":
        train_rows = cpt_rows(spec, train_rows, general_file, tokenizer)
        eval_rows = [as_text(r, tokenizer) for r in eval_rows] if eval_rows else None
    elif spec.method == "kto":
        train_rows = labeled_answers(train_rows, spec.seed)
        eval_rows = labeled_answers(eval_rows, spec.seed) if eval_rows else None
    elif spec.method == "grpo":
        train_rows = prompts_and_references(train_rows)
        eval_rows = prompts_and_references(eval_rows) if eval_rows else None
    dtype = getattr(torch, plan.dtype)
    model_kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True, "trust_remote_code": False}
    kernels = cuda_kernels(plan)
    if kernels:
        job.log(f"kernels: {', '.join(kernels)}")
    if "flash_attention_2" in kernels:
        model_kwargs["attn_implementation"] = "flash_attention_2"
    if spec.adapter == "qlora":
        from transformers import BitsAndBytesConfig

        model_kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype
        )
        model_kwargs["device_map"] = {"": 0} if plan.device == "cuda" else "cpu"
    if spec.method == "reward":  # a scalar head on the base model scores a whole answer
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(base_path, num_labels=1, **model_kwargs)
        model.config.pad_token_id = tokenizer.pad_token_id
    else:
        model = AutoModelForCausalLM.from_pretrained(base_path, **model_kwargs)
    quantized = any("4bit" in type(m).__name__ for m in model.modules())
    peft_config = None
    if spec.adapter in ("lora", "qlora"):
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=spec.lora_r, lora_alpha=spec.lora_alpha, lora_dropout=spec.lora_dropout,
            target_modules=spec.lora_target_modules, task_type="SEQ_CLS" if spec.method == "reward" else "CAUSAL_LM",
        )  # fmt: skip
    reporter = TrainingMonitor(job, plan)
    trainer = _trainer(plan, model, tokenizer, peft_config, train_rows, eval_rows, reporter, liger="liger" in kernels)
    # -- train ------------------------------------------------------------------------
    resume = next(filter(None, map(newest_verified, job.checkpoint_dirs())), None) if job.resuming else None
    if resume is not None:
        job.log(f"resuming from {resume.name}")
    base_eval = None
    if eval_rows and resume is None:  # the base model on held-out data: what fine-tuning must beat
        # evaluate() logs its metrics, which the reporter's on_log records as job metrics at step 0.
        base_eval = trainer.evaluate().get("eval_loss")
    outcome = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    runtime = float(outcome.metrics["train_runtime"])
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    if reporter.diverged:
        raise InvalidArguments(f"learning_rate: training diverged ({reporter.diverged}); lower it and start again")
    if spec.early_stopping_patience is not None and trainer.state.global_step < trainer.state.max_steps:
        reporter.warnings.append(f"early stopping: eval loss did not improve for {spec.early_stopping_patience} "
                                 f"evaluations; stopped at step {trainer.state.global_step} with the best model")  # fmt: skip
    final_eval = trainer.evaluate().get("eval_loss") if eval_rows else None  # recorded by on_log, as above
    # -- save -------------------------------------------------------------------------
    output = job.run.output
    adapter_dir = output / ("adapter" if peft_config is not None else "model")
    trainer.save_model(str(adapter_dir))  # the trainer writes from the main process only
    result = TrainResult(
        output=job.run.shown(output),
        adapter=job.run.shown(adapter_dir),
        method=spec.method,
        steps=trainer.state.global_step,
        final_loss=reporter.last_loss,
        first_loss=reporter.first_loss,
        best_eval_loss=reporter.best_eval if final_eval is None else min(final_eval, reporter.best_eval or final_eval),
        base_eval_loss=base_eval,
        final_eval_loss=final_eval,
        train_runtime_s=round(runtime, 2),
        tokens_per_second=round(tokens / runtime, 1) if tokens and runtime > 0 else None,
        resumed_from=resume.name if resume else None,
        base_quantized_4bit=quantized,
        processes=trainer.args.world_size,
        train_rows=len(train_rows),
        dataset_fingerprint=plan.dataset_fingerprint,
        warnings=reporter.warnings,
        method_metrics=reporter.method_metrics,
    )
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(adapter_dir))
        write_outputs(output, spec, result, HF_PACKAGES, cuda=torch.version.cuda if torch.cuda.is_available() else None,
                      gpus=[torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])  # fmt: skip
    # -- cleanup ----------------------------------------------------------------------
    del trainer, model
    return result


def _trainer(plan: TrainPlan, model: Any, tokenizer: Any, peft_config: Any, train_rows: list[dict[str, Any]],
             eval_rows: list[dict[str, Any]] | None, reporter: Any, liger: bool = False) -> Any:  # fmt: skip
    from datasets import Dataset

    spec = plan.spec
    common = {
        "output_dir": str(reporter.job.checkpoint_dir),
        "learning_rate": spec.learning_rate,
        "num_train_epochs": spec.epochs,
        "max_steps": spec.max_steps or -1,
        "per_device_train_batch_size": spec.batch_size,
        "per_device_eval_batch_size": spec.batch_size,
        "gradient_accumulation_steps": spec.gradient_accumulation,
        "lr_scheduler_type": spec.scheduler,
        "warmup_steps": spec.warmup_ratio,
        "weight_decay": spec.weight_decay,
        "max_grad_norm": spec.max_grad_norm,
        "seed": spec.seed,
        "data_seed": spec.seed,
        "logging_steps": spec.logging_steps,
        "save_strategy": "steps",
        "save_steps": save_interval(spec.save_steps, plan.steps),
        "save_total_limit": 2,
        "eval_strategy": "steps" if eval_rows else "no",
        "eval_steps": spec.eval_steps or spec.logging_steps * 2,
        "gradient_checkpointing": spec.gradient_checkpointing,
        "use_cpu": plan.device == "cpu",
        "bf16": plan.dtype == "bfloat16" and plan.device == "cuda",
        "fp16": plan.dtype == "float16" and plan.device == "cuda",
        "report_to": spec.report_to or "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "include_num_input_tokens_seen": "non_padding",
        "max_length": spec.max_length,
        "use_liger_kernel": liger,
    }
    callbacks: list[Any] = [reporter.callback()]
    if spec.early_stopping_patience is not None:
        from transformers import EarlyStoppingCallback

        # The best model is restored at the end, so a checkpoint must exist at every evaluation.
        common.update(load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
                      save_steps=common["eval_steps"])  # fmt: skip
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=spec.early_stopping_patience))
    train_set = Dataset.from_list(train_rows)
    eval_set = Dataset.from_list(eval_rows) if eval_rows else None
    trainer_class, args = _method_config(plan, common)
    extra = {"reward_funcs": _reward_functions(spec)} if spec.method == "grpo" else {}
    return lean(trainer_class)(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                               processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks, **extra)  # fmt: skip


def cuda_kernels(plan: TrainPlan) -> list[str]:
    """The faster kernels this run uses: on CUDA only, where they are installed on the machine
    that trains, unless the spec says off. Flash attention needs 16-bit weights; Liger's fused
    kernels (RMSNorm, RoPE, SwiGLU, fused linear cross-entropy) patch the model's modules."""
    import importlib.util

    if plan.spec.kernels == "off" or plan.device != "cuda":
        return []
    kernels = ["liger"] if importlib.util.find_spec("liger_kernel") is not None else []
    if plan.dtype in ("bfloat16", "float16") and importlib.util.find_spec("flash_attn") is not None:
        kernels.append("flash_attention_2")
    return kernels


def _method_config(plan: TrainPlan, common: dict[str, Any]) -> tuple[Any, Any]:
    """The TRL trainer for the spec's method, and its config: the common arguments plus the
    method's own."""
    spec = plan.spec
    if spec.method == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(**common, beta=spec.preference_beta)
    if spec.method == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer, ORPOConfig(**common, beta=spec.preference_beta)
    if spec.method == "kto":
        from trl import KTOConfig, KTOTrainer

        return KTOTrainer, KTOConfig(**common, beta=spec.preference_beta, desirable_weight=spec.kto_desirable_weight,
                                     undesirable_weight=spec.kto_undesirable_weight)  # fmt: skip
    if spec.method == "reward":
        from trl import RewardConfig, RewardTrainer

        return RewardTrainer, RewardConfig(**common)
    if spec.method == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        # Each prompt's answers are sampled once per optimizer step (steps_per_generation is the
        # accumulation), so a checkpoint never falls inside a batch of answers and resume is exact.
        return GRPOTrainer, GRPOConfig(
            **{k: v for k, v in common.items() if k != "max_length"}, beta=spec.preference_beta,
            num_generations=spec.num_generations, max_completion_length=spec.max_completion_length,
            temperature=spec.temperature, reward_weights=[r.weight for r in spec.rewards],
            steps_per_generation=spec.gradient_accumulation, log_completions=False,
        )  # fmt: skip
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer, SFTConfig(**common, packing=spec.packing, assistant_only_loss=spec.method == "sft" and spec.assistant_only_loss,
                                 dataset_text_field="text")  # fmt: skip


def _reward_functions(spec: Any) -> list[Any]:
    from forge_mcp.models.judge import Judge, JudgeConfig
    from forge_mcp.training.rewards import reward_functions

    def judge_for(reward: Any) -> Judge:
        return Judge(JudgeConfig(url=reward.judge_url, model=reward.judge_model, api_key_env=reward.judge_api_key_env))

    return reward_functions(spec.rewards, judge_for)


class TrainingMonitor:
    """Trainer events -> job metrics, progress with ETA, divergence warnings, manifests."""

    def __init__(self, job: JobContext, plan: TrainPlan) -> None:
        self.job = job
        self.plan = plan
        self.first_loss: float | None = None
        self.last_loss: float | None = None
        self.best_eval: float | None = None
        self.eval_history: list[float] = []
        self.train_at_eval: list[float] = []
        self.warnings: list[str] = []
        self.diverged: str | None = None
        self.method_metrics: dict[str, float] = {}  # the method's own, as last logged
        self.stepped = False
        self._started = time.perf_counter()
        self._tokens = 0
        self._mark: tuple[float, int] = (self._started, 0)

    def callback(self) -> Any:
        from transformers import TrainerCallback

        reporter = self

        class Callback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
                reporter.on_log(state, control, logs or {})

            def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                if folder.is_dir() and state.is_world_process_zero:
                    write_manifest(folder, state.global_step)

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                reporter.job.check_canceled()
                if not reporter.stepped:  # the first step of this process: training has really begun
                    reporter.stepped = True
                    reporter.job.progress(state.global_step, state.max_steps, f"step {state.global_step}/{state.max_steps}")

        return Callback()

    def on_log(self, state: Any, control: Any, logs: dict[str, Any]) -> None:
        step = state.global_step
        self._tokens = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        now = time.perf_counter()
        if self._tokens > self._mark[1]:
            self.job.metric("tokens_per_s", step, (self._tokens - self._mark[1]) / max(now - self._mark[0], 1e-9))
            self._mark = (now, self._tokens)
        for key, value in logs.items():
            name = metric_name(key)
            if name is not None and isinstance(value, int | float):
                self.job.metric(name, step, float(value))
                if name not in COMMON_METRICS:
                    self.method_metrics[name] = round(float(value), 6)
        memory = _peak_memory_gib()
        if memory is not None:
            self.job.metric("memory_gib", step, memory)
        if isinstance(logs.get("loss"), int | float):
            self._check_loss(float(logs["loss"]), control)
        if isinstance(logs.get("eval_loss"), int | float):
            self._check_eval(float(logs["eval_loss"]))
        total = state.max_steps or self.plan.steps
        elapsed = now - self._started
        eta = elapsed / step * (total - step) if step else None
        loss = f"loss {self.last_loss:.4f}" if self.last_loss is not None else "starting"
        self.job.progress(step, total, f"step {step}/{total}, {loss}" + (f", ETA {eta:.0f} s" if eta is not None else ""))

    def _check_loss(self, loss: float, control: Any) -> None:
        if self.first_loss is None:
            self.first_loss = loss
        self.last_loss = loss
        if not math.isfinite(loss):
            self.diverged = "the loss became NaN or infinite"
        elif self.plan.spec.method != "grpo" and loss > DIVERGENCE_FACTOR * self.first_loss:  # GRPO's loss hovers at 0
            self.diverged = f"the loss rose from {self.first_loss:.3f} to {loss:.3f}"
        if self.diverged:
            self.warnings.append(f"divergence: {self.diverged}")
            self.job.log(f"[warning] divergence: {self.diverged}; stopping")
            control.should_training_stop = True

    def _check_eval(self, eval_loss: float) -> None:
        self.best_eval = eval_loss if self.best_eval is None else min(self.best_eval, eval_loss)
        self.eval_history.append(eval_loss)
        self.train_at_eval.append(self.last_loss if self.last_loss is not None else math.inf)
        if len(self.eval_history) >= 3 and not any(w.startswith("overfitting") for w in self.warnings):
            evals, trains = self.eval_history[-3:], self.train_at_eval[-3:]
            if evals[0] < evals[1] < evals[2] and trains[0] > trains[2]:
                message = f"overfitting: eval loss rose to {evals[2]:.4f} while train loss fell to {trains[2]:.4f}"
                self.warnings.append(message)
                self.job.log(f"[warning] {message}")


def _peak_memory_gib() -> float | None:
    import torch

    if torch.cuda.is_available():
        return round(torch.cuda.max_memory_allocated() / 1024**3, 3)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)
