"""A tiny chat model built offline, for tests and the demo: `forge-mcp dev tiny-model PATH`.

It trains a byte-level BPE tokenizer with a ChatML template (with `{% generation %}`
markers, so SFT can learn from assistant tokens only; an assistant's tool calls are rendered
as `call <name> <arguments>` lines, so chats from traces of tool-using agents train on their
calls rather than on an empty turn), builds a small Llama, and
pre-trains it briefly on synthetic chats about a fixed world of facts, so that it really
answers simple questions and fine-tuning shows a measurable change. Deterministic per
seed; about ten seconds on two CPU cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|im_start|>assistant\n{% generation %}{% if message['content'] %}{{ message['content'] }}{% endif %}"
    "{% for call in message['tool_calls'] or [] %}{% if message['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
    "call {{ call['function']['name'] }} {{ call['function']['arguments'] }}{% endfor %}"
    "<|im_end|>{% endgeneration %}\n"
    "{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple"]
THINGS = ["apple", "sky", "grass", "sun", "night", "snow", "carrot", "plum", "cherry", "sea", "leaf", "coal"]
# Every linear output size is a multiple of 32: bitsandbytes 4-bit on CPU and GGUF blocks need it.
ARCHITECTURE = {
    "hidden_size": 64,
    "intermediate_size": 192,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}
VOCAB_SIZE = 1024


def world(seed: int) -> dict[str, str]:
    """The facts the base model learns: what colour each thing is."""
    rng = random.Random(seed)
    return {thing: rng.choice(COLOURS) for thing in THINGS}


def pretraining_chats(seed: int, count: int) -> list[list[dict[str, str]]]:
    rng = random.Random(seed + 1)
    facts = world(seed)
    chats = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            thing = rng.choice(THINGS)
            question, answer = f"What colour is the {thing}?", f"The {thing} is {facts[thing]}."
        elif roll < 0.8:
            a, b = rng.randrange(10), rng.randrange(10)
            question, answer = f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."
        else:
            word = rng.choice(THINGS + COLOURS)
            question, answer = f"Repeat the word {word}.", f"{word}"
        chats.append([{"role": "user", "content": question}, {"role": "assistant", "content": answer}])
    return chats


def build_tiny_model(path: Path, *, seed: int = 0, steps: int = 300, progress: Any = None) -> dict[str, Any]:
    """Tokenizer, model and brief pre-training; writes an HF folder at `path`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    chats = pretraining_chats(seed, 4000)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator((m["content"] for chat in chats for m in chat), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None, unk_token=None
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = ARCHITECTURE["max_position_embeddings"]
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        **ARCHITECTURE,
    )
    model = LlamaForCausalLM(config)
    texts = [tokenizer.apply_chat_template(chat, tokenize=False) for chat in chats]
    losses = _pretrain(model, tokenizer, texts, steps=steps, seed=seed, progress=progress)
    path.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    info = {
        "built_by": "forge-mcp dev tiny-model",
        "seed": seed,
        "steps": steps,
        "parameters": sum(p.numel() for p in model.parameters()),
        "first_loss": round(losses[0], 4),
        "final_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "facts": world(seed),
    }
    (path / "forge_tiny_model.json").write_text(json.dumps(info, indent=2))
    return info


def _pretrain(model: Any, tokenizer: Any, texts: list[str], *, steps: int, seed: int, progress: Any) -> list[float]:
    import torch

    rng = random.Random(seed + 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        batch = tokenizer(rng.sample(texts, 32), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if progress is not None and (step + 1) % 50 == 0:
            progress(step + 1, steps, losses[-1])
    model.eval()
    return losses
