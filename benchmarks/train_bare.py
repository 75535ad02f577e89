"""The baseline of the training benchmark: a bare TRL SFTTrainer script, the way one writes
it by hand, with the same model, data, hyperparameters and seed as the forge job. Prints
when its first optimizer step ended (wall clock), tokens/s and peak RSS as JSON.

    python -m benchmarks.train_bare MODEL_DIR TRAIN.jsonl --steps 40
"""

from __future__ import annotations

import time

LAUNCHED = time.time()  # before the heavy imports, which are part of a cold start

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402


def main(model_dir: Path, data: Path, steps: int) -> dict:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    first_step: list[float] = []

    class FirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
            if not first_step:
                first_step.append(time.time())

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="float32")
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), max_steps=steps, per_device_train_batch_size=8, learning_rate=3e-3,
        max_length=128, logging_steps=5, seed=0, data_seed=0, use_cpu=True, bf16=False, report_to="none",
        assistant_only_loss=True, include_num_input_tokens_seen="non_padding", disable_tqdm=True,
        warmup_steps=0.0, lr_scheduler_type="linear",
        # TRL's configs default to recomputing activations; the forge spec does not (gradient_checkpointing:
        # false), so the baseline does the same work. Left on, it costs this script 20-25 % of its speed.
        gradient_checkpointing=False,
    )  # fmt: skip
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
        peft_config=LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
        callbacks=[FirstStep()],
    )  # fmt: skip
    outcome = trainer.train()
    runtime = float(outcome.metrics["train_runtime"])
    return {
        "launched_at": LAUNCHED,
        "first_step_at": first_step[0],
        "tokens_per_second": round(trainer.state.num_input_tokens_seen / runtime, 1),
        "train_runtime_s": round(runtime, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("data", type=Path)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    print(json.dumps(main(args.model_dir, args.data, args.steps)))
