"""The lean trainers (backends/hf_speed.py) train as TRL's do: on the tiny model with the
same seed they log the same metrics at the same steps with the same values, count the same
input tokens and FLOPs, and their LM head gives TRL's per-token outputs and gradients, for
any temperature, logit scale and softcap TRL was set up with."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("trl")

import torch  # noqa: E402

from forge_mcp.backends.hf_speed import compact_lm_head, lean  # noqa: E402

NAMES = ("ann", "bob", "cy", "dee", "eve")


def chats(n: int) -> list[dict[str, Any]]:
    return [{"messages": [{"role": "user", "content": f"Greet {NAMES[i % 5]}{i} please."},
                          {"role": "assistant", "content": f"Hello, {NAMES[i % 5]}{i}! Welcome."}]} for i in range(n)]  # fmt: skip


def sft(trainer_cls: type, model_dir: Path, output: Path, steps: int = 6) -> tuple[Any, list[tuple[int, dict[str, Any]]]]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
    from trl import SFTConfig

    seen: list[tuple[int, dict[str, Any]]] = []

    class Logs(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            seen.append((state.global_step, dict(logs or {})))

    set_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = SFTConfig(
        output_dir=str(output), max_steps=steps, per_device_train_batch_size=4, learning_rate=3e-3, max_length=128,
        logging_steps=1, save_steps=3, save_total_limit=2, seed=0, data_seed=0, use_cpu=True, report_to="none",
        assistant_only_loss=True, include_num_input_tokens_seen="non_padding", disable_tqdm=True, max_grad_norm=0.5,
    )  # fmt: skip
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = trainer_cls(model=model, args=args, train_dataset=Dataset.from_list(chats(48)), processing_class=tokenizer,
                          peft_config=lora, callbacks=[Logs()])  # fmt: skip
    trainer.train()
    return trainer, seen


def test_a_lean_sft_trainer_logs_what_trl_logs(tiny_model: Path, tmp_path: Path) -> None:
    from trl import SFTTrainer

    plain, plain_logs = sft(SFTTrainer, tiny_model, tmp_path / "plain")
    quick, quick_logs = sft(lean(SFTTrainer), tiny_model, tmp_path / "lean")
    assert type(quick).__name__ == "LeanSFTTrainer" and lean(SFTTrainer) is type(quick)
    assert [(step, sorted(logs)) for step, logs in quick_logs] == [(step, sorted(logs)) for step, logs in plain_logs]
    assert [step for step, logs in quick_logs if "loss" in logs] == [1, 2, 3, 4, 5, 6]
    # The first step, before any update, to float rounding; after it Adam's first steps (g / (|g| + eps))
    # magnify rounding in near-zero gradients, so the runs drift apart a little.
    first, later = (1e-5, 1e-4), (2e-3, 3e-2)
    for step, mine in quick_logs:
        theirs = dict(plain_logs)[step]
        rel, grad_rel = first if step == 1 else later
        for key in ("loss", "entropy", "learning_rate", "num_tokens"):
            if key in theirs:
                assert mine[key] == pytest.approx(theirs[key], rel=rel), (step, key)
        if "grad_norm" in theirs:
            assert mine["grad_norm"] == pytest.approx(theirs["grad_norm"], rel=grad_rel), step
            assert mine["mean_token_accuracy"] == pytest.approx(theirs["mean_token_accuracy"], abs=0.02), step
    assert quick.state.num_input_tokens_seen == plain.state.num_input_tokens_seen > 0
    assert quick.state.total_flos == plain.state.total_flos > 0
    # Checkpoints resume the same way (the same files), without the model cards.
    for step in (3, 6):
        mine = {p.name for p in (tmp_path / "lean" / f"checkpoint-{step}").iterdir()}
        theirs = {p.name for p in (tmp_path / "plain" / f"checkpoint-{step}").iterdir()}
        assert mine == theirs - {"README.md"} and "optimizer.pt" in mine and "adapter_model.safetensors" in mine
    state = json.loads((tmp_path / "lean" / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["num_input_tokens_seen"] == quick.state.num_input_tokens_seen


@pytest.mark.parametrize("setup", [{}, {"temperature": 0.7, "softcap": 5.0, "scale": 0.5}])
def test_the_compact_lm_head_gives_trl_outputs_and_gradients(tiny_model: Path, setup: dict[str, float]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.utils import add_fused_lm_head

    outputs = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    model.config.final_logit_softcapping = setup.get("softcap")
    model.config.logit_scale = setup.get("scale")
    add_fused_lm_head(model, temperature=setup.get("temperature", 1.0), outputs=outputs)
    trl_forward = model.forward
    assert compact_lm_head(model) and not compact_lm_head(model)  # once

    batch = tokenizer([f"<|im_start|>user\nGreet {n}.<|im_end|>\n<|im_start|>assistant\nHello {n}!" for n in NAMES],
                      return_tensors="pt", padding=True)  # fmt: skip
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    labels[:, :6] = -100  # the prompt, as assistant_only_loss leaves it

    def run(forward: Any) -> tuple[Any, list[torch.Tensor]]:
        model.zero_grad()
        out = forward(**batch, labels=labels, fused_lm_head=True)
        (out.loss + out.entropy.sum()).backward()
        return out, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    theirs, their_grads = run(trl_forward)
    mine, my_grads = run(model.forward)
    assert torch.equal(mine.label_mask, theirs.label_mask)
    assert torch.equal(mine.is_top1, theirs.is_top1)
    for name in ("loss", "log_probs", "entropy", "log_sum_sq_probs", "mean_logits"):
        assert torch.allclose(getattr(mine, name), getattr(theirs, name), atol=1e-5, rtol=1e-5), name
    assert len(my_grads) == len(their_grads) > 0
    for mine_grad, their_grad in zip(my_grads, their_grads, strict=True):  # to float rounding, on each tensor's scale
        assert (mine_grad - their_grad).abs().max() <= 1e-5 * their_grad.abs().max()
    # Without the fused head (generation, plain forward) the model is the one TRL left.
    assert torch.equal(model(**batch).logits, trl_forward(**batch).logits)


def test_a_model_trl_did_not_patch_is_left_alone(tiny_model: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    assert not compact_lm_head(model) and "forward" not in model.__dict__


def test_top1_is_the_first_maximum_as_argmax_gives_it() -> None:
    from forge_mcp.backends.hf_speed import _is_top1

    generator = torch.Generator().manual_seed(0)
    for ties in (False, True):  # small integer logits tie often: the first maximum counts, as in TRL
        logits = torch.randint(-2, 2, (64, 8), generator=generator).float() if ties else torch.randn(64, 8, generator=generator)
        targets = torch.randint(0, 8, (64,), generator=generator)
        targets[:16] = logits[:16].argmax(-1)
        assert torch.equal(_is_top1(logits, targets), logits.argmax(-1) == targets)


def test_training_mode_is_skipped_only_while_every_module_is_in_it() -> None:
    from forge_mcp.backends.hf_speed import _train_mode_kept

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.1))
    trainer = SimpleNamespace(_lean_modules=None)  # the helper keeps its list of modules on the trainer
    model.train()
    with _train_mode_kept(model, trainer):
        assert model.train() is model
        model.eval()  # as a generation in the middle of a step does
        assert not any(m.training for m in model.modules())
        model.train()
        assert all(m.training for m in model.modules())
    assert "train" not in model.__dict__
