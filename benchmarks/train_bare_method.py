"""The baseline of the per-method training benchmark: the bare TRL trainer for one method,
written the way one scripts it by hand from TRL's docs, with the same model, rows,
hyperparameters and seed as the forge job it is compared with (benchmarks/train_methods.py).
Prints its optimizer steps per second and, where TRL counts them, input tokens per second.

    python -m benchmarks.train_bare_method dpo MODEL_DIR ROWS.jsonl --steps 20
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

# What the forge side runs too (benchmarks/train_methods.py passes the same as spec fields).
LEARNING_RATE, BATCH, MAX_LENGTH, LORA_R, LORA_ALPHA, SEED = 3e-3, 8, 128, 8, 16, 0
GENERATIONS, COMPLETION_TOKENS = 4, 16


def main(method: str, model_dir: Path, data: Path, steps: int) -> dict[str, Any]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    common = dict(output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=BATCH, learning_rate=LEARNING_RATE,
                  logging_steps=5, seed=SEED, data_seed=SEED, use_cpu=True, bf16=False, report_to="none", disable_tqdm=True,
                  save_strategy="no", include_num_input_tokens_seen="non_padding",
                  gradient_checkpointing=False)  # fmt: skip  # TRL's default recomputes; the forge spec's does not
    lora = dict(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=0.0, target_modules="all-linear")
    extra: dict[str, Any] = {}
    if method == "reward":
        from trl import RewardConfig, RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype="float32")
        model.config.pad_token_id = tokenizer.pad_token_id
        trainer_class, args, task = RewardTrainer, RewardConfig(**common, max_length=MAX_LENGTH), "SEQ_CLS"
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
        task = "CAUSAL_LM"
        if method == "dpo":
            from trl import DPOConfig, DPOTrainer

            trainer_class, args = DPOTrainer, DPOConfig(**common, max_length=MAX_LENGTH, beta=0.1)
        elif method == "orpo":
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            trainer_class, args = ORPOTrainer, ORPOConfig(**common, max_length=MAX_LENGTH, beta=0.1)
        elif method == "kto":
            from trl import KTOConfig, KTOTrainer

            from forge_mcp.training.run import labeled_answers

            # The very rows the forge job trains on: each pair as a good and a bad answer, shuffled
            # by seed (KTO reads in order; TRL's own unpairing would put every good answer first).
            rows = labeled_answers(rows, SEED)
            trainer_class, args = KTOTrainer, KTOConfig(**common, max_length=MAX_LENGTH, beta=0.1)
        elif method == "grpo":
            from trl import GRPOConfig, GRPOTrainer

            def exact_match(completions: list[Any], reference: list[str], **_: Any) -> list[float]:
                return [float(c[0]["content"].strip() == r.strip()) for c, r in zip(completions, reference, strict=True)]

            rows = [{"prompt": r["messages"][:-1], "reference": r["messages"][-1]["content"]} for r in rows]
            trainer_class, args = GRPOTrainer, GRPOConfig(**common, num_generations=GENERATIONS,
                                                          max_completion_length=COMPLETION_TOKENS, beta=0.0)  # fmt: skip
            extra["reward_funcs"] = [exact_match]
        else:
            from trl import SFTConfig, SFTTrainer

            trainer_class, args = SFTTrainer, SFTConfig(**common, max_length=MAX_LENGTH, assistant_only_loss=True)
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                            peft_config=LoraConfig(**lora, task_type=task), **extra)  # fmt: skip
    runtime = float(trainer.train().metrics["train_runtime"])
    tokens = int(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    return {"method": method, "steps_per_second": round(steps / runtime, 3), "train_runtime_s": round(runtime, 2),
            "tokens_per_second": round(tokens / runtime, 1) if tokens else None}  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", choices=["sft", "dpo", "orpo", "kto", "reward", "grpo"])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(main(args.method, args.model_dir, args.data, args.steps)))
