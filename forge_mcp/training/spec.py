"""One training spec for every method, adapter and backend: pydantic, YAML-loadable, with
sane bounds. Recipes in configs/recipes/*.yaml are partial specs (hyperparameters); the
caller's own fields override them."""

from __future__ import annotations

from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from forge_mcp.errors import InvalidArguments, NotFound, describe_validation_error
from forge_mcp.package_data import config_file
from forge_mcp.training.rewards import RewardSpec

Method = Literal["sft", "dpo", "cpt", "orpo", "kto", "reward", "grpo"]
Adapter = Literal["lora", "qlora", "full"]
Backend = Literal["auto", "hf", "mlx"]
# Which canonical dataset kinds each method learns from. GRPO reads chats: the turns before the
# last assistant answer are the prompt, that answer is the reference its rewards check against.
METHOD_KINDS = {"sft": ("messages",), "dpo": ("preference",), "cpt": ("text", "messages"), "orpo": ("preference",),
                "kto": ("preference", "labeled"), "reward": ("preference",), "grpo": ("messages",)}  # fmt: skip
# beta when the spec gives none: the preference methods' usual 0.1; GRPO's KL penalty off, as in
# DeepSeek-R1 and TRL, so no reference model is kept.
DEFAULT_BETA = {"dpo": 0.1, "orpo": 0.1, "kto": 0.1, "grpo": 0.0}
# max_length when neither the caller nor the recipe gives one; train_plan lowers it (or a
# recipe's) to the base model's positions, while a caller's own value over them is refused.
DEFAULT_MAX_LENGTH = 1024


class TrainSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Method = Field("sft", description="sft (chat), dpo, orpo or kto (preference pairs; kto also labeled answers), "
                           "reward (a pairwise reward model), grpo (reinforcement with `rewards`), cpt (continued "
                           "pre-training on text)")  # fmt: skip
    adapter: Adapter = Field("lora", description="lora, qlora (4-bit base, bitsandbytes) or full fine-tuning")
    base_model: str = Field(max_length=512, description="Local Hugging Face model folder (in the workspace or an import root)")
    dataset: str = Field(max_length=80, description="Prepared dataset: '<name>' (newest) or '<name>@v<N>'")
    split: str | None = Field(None, max_length=32, description="Split to train on; default train, or every row "
                              "of a dataset without splits")  # fmt: skip
    eval_split: str | None = Field(None, max_length=32, description="Split for eval loss, e.g. 'test'; a dataset without "
                                   "splits holds out a seeded tenth of its rows under this name")  # fmt: skip
    general_dataset: str | None = Field(None, max_length=80, description="cpt: general text mixed in against forgetting")
    mix_ratio: float = Field(0.0, ge=0.0, le=0.9, description="cpt: share of rows drawn from general_dataset")
    backend: Backend = Field("auto", description="auto: CUDA -> hf, Apple Silicon -> mlx, otherwise hf on CPU")
    devices: int | None = Field(None, ge=1, le=64, description="Data-parallel processes (torchrun; on Ray, Ray Train workers): "
                                "default every GPU on CUDA, 1 elsewhere")  # fmt: skip
    learning_rate: float = Field(2e-4, gt=0.0, le=0.1)
    epochs: float = Field(1.0, gt=0.0, le=100.0)
    max_steps: int | None = Field(None, ge=1, le=10_000_000, description="Overrides epochs when set")
    batch_size: int = Field(4, ge=1, le=4096, description="Per device")
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    max_length: int | None = Field(None, ge=16, le=1_048_576, description=f"Tokens per row; longer rows are truncated. "
                                   f"Default {DEFAULT_MAX_LENGTH}, lowered to the model's limit")  # fmt: skip
    lora_r: int = Field(16, ge=1, le=1024)
    lora_alpha: int = Field(32, ge=1, le=8192)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    lora_target_modules: list[str] | Literal["all-linear"] = Field("all-linear", description="Module names, or all-linear")
    warmup_ratio: float = Field(0.0, ge=0.0, le=0.5)
    scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    max_grad_norm: float = Field(1.0, gt=0.0, le=1000.0)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    logging_steps: int = Field(5, ge=1, le=100_000, description="Metrics every N optimizer steps")
    eval_steps: int | None = Field(None, ge=1, le=1_000_000, description="Eval loss every N steps (needs eval_split)")
    save_steps: int | None = Field(None, ge=1, le=1_000_000, description="Checkpoint every N steps (default: about 10 per run, "
                                      "at least 50 steps apart)")  # fmt: skip
    packing: bool = Field(False, description="Pack short rows into full max_length sequences")
    gradient_checkpointing: bool = False
    kernels: Literal["auto", "off"] = Field("auto", description="auto: on CUDA, Liger's fused kernels and flash "
                                            "attention 2 where they are installed (bf16/fp16); off: neither")  # fmt: skip
    assistant_only_loss: bool = Field(True, description="sft: learn from assistant tokens only")
    dpo_beta: float = Field(0.1, gt=0.0, le=10.0, description="dpo's beta when beta is not given (older specs)")
    beta: float | None = Field(None, ge=0.0, le=10.0, description="dpo/orpo/kto: preference strength (default 0.1); "
                               "grpo: KL penalty against the base (default 0: no reference model)")  # fmt: skip
    kto_desirable_weight: float = Field(1.0, gt=0.0, le=100.0, description="kto: weight of good answers' loss")
    kto_undesirable_weight: float = Field(1.0, gt=0.0, le=100.0, description="kto: weight of bad answers' loss")
    rewards: list[RewardSpec] = Field(default_factory=list, max_length=8, description="grpo: reward functions from "
                                      "the allowlist, summed by weight")  # fmt: skip
    num_generations: int = Field(4, ge=2, le=64, description="grpo: answers sampled per prompt")
    max_completion_length: int = Field(128, ge=1, le=32_768, description="grpo: tokens per sampled answer")
    temperature: float = Field(1.0, gt=0.0, le=2.0, description="grpo: sampling temperature")
    early_stopping_patience: int | None = Field(None, ge=1, le=1000, description="Stop after N evals without improvement")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description="auto: bf16 on recent GPUs, fp32 on CPU")
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> TrainSpec:
        problems = []
        if self.general_dataset is not None and self.method != "cpt":
            problems.append("general_dataset: data mixing is for method cpt")
        if self.mix_ratio > 0 and self.general_dataset is None:
            problems.append("mix_ratio: give general_dataset to mix with")
        if self.eval_steps is not None and self.eval_split is None:
            problems.append("eval_steps: give eval_split to evaluate on")
        if self.early_stopping_patience is not None and self.eval_split is None:
            problems.append("early_stopping_patience: early stopping watches eval loss; give eval_split")
        if self.method == "grpo" and not self.rewards:
            problems.append('rewards: grpo needs at least one reward, e.g. [{"name": "exact_match"}]')
        if self.rewards and self.method != "grpo":
            problems.append("rewards: reward functions are for method grpo")
        if self.beta is not None and self.method not in DEFAULT_BETA:
            problems.append(f"beta: {self.method} has no beta; it is for dpo, orpo, kto and grpo")
        elif self.beta == 0 and self.method != "grpo":
            problems.append(f"beta: 0 leaves {self.method} without its preference term; use a value above 0, e.g. 0.1")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def preference_beta(self) -> float:
        """The method's beta: the caller's, else dpo_beta for dpo, else the method's default."""
        if self.beta is not None:
            return self.beta
        return self.dpo_beta if self.method == "dpo" else DEFAULT_BETA.get(self.method, 0.0)


def list_recipes() -> list[str]:
    return sorted(f.name.removesuffix(".yaml") for f in config_file("recipes").iterdir() if f.name.endswith(".yaml"))


def load_recipe(name: str) -> dict[str, Any]:
    if name not in list_recipes():
        raise NotFound(f"recipe: no recipe {name!r}; the recipes are " + ", ".join(list_recipes()))
    data = yaml.safe_load(config_file("recipes", f"{name}.yaml").read_text()) or {}
    if not isinstance(data, dict):
        raise InvalidArguments(f"recipe {name}: must be a mapping of spec fields")
    return data


def resolve_spec(fields: dict[str, Any], recipe: str | None = None) -> TrainSpec:
    """The recipe's fields, then the caller's; every problem reported at once."""
    merged = {**(load_recipe(recipe) if recipe else {}), **fields}
    try:
        return TrainSpec.model_validate(merged)
    except ValidationError as exc:
        problems = describe_validation_error(exc, "the training spec", "a field")
        raise InvalidArguments(f"invalid training spec: {problems}") from None
