"""The GGUF writer: llama metadata, the tokenizer, a plain-Jinja chat template, and Q/K rows
in llama.cpp's rotary order — checked by reading the file back with gguf's reader and by
loading it in transformers, whose GGUF loader undoes the permutation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from forge_mcp.backends.gguf_writer import chat_template, write_gguf
from forge_mcp.errors import InvalidArguments


@pytest.fixture(scope="module")
def written(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gguf") / "tiny-f16.gguf"
    write_gguf(tiny_model, out, "tiny@v1")
    return out


def field(reader: object, name: str) -> object:
    value = reader.fields[name]  # type: ignore[attr-defined]
    return value.contents()


def test_metadata_and_tokenizer_describe_the_model(written: Path, tiny_model: Path) -> None:
    from gguf import GGUFReader

    reader = GGUFReader(written)
    config = json.loads((tiny_model / "config.json").read_text())
    assert field(reader, "general.architecture") == "llama"
    assert field(reader, "llama.block_count") == config["num_hidden_layers"]
    assert field(reader, "llama.attention.head_count_kv") == config["num_key_value_heads"]
    assert len(field(reader, "tokenizer.ggml.tokens")) == config["vocab_size"]  # type: ignore[arg-type]
    template = field(reader, "tokenizer.chat_template")
    assert "<|im_start|>" in template and "{% generation %}" not in template  # type: ignore[operator]
    assert "output.weight" not in {t.name for t in reader.tensors}  # tied to token_embd


def test_q_rows_are_permuted_for_llama_cpp(written: Path, tiny_model: Path) -> None:
    from gguf import GGUFReader
    from safetensors.numpy import load_file

    hf = load_file(tiny_model / "model.safetensors")["model.layers.0.self_attn.q_proj.weight"]
    stored = next(t for t in GGUFReader(written).tensors if t.name == "blk.0.attn_q.weight")
    q = np.array(stored.data, dtype=np.float32).reshape(hf.shape)
    heads = json.loads((tiny_model / "config.json").read_text())["num_attention_heads"]
    undone = q.reshape(heads, q.shape[0] // heads // 2, 2, -1).swapaxes(1, 2).reshape(q.shape)
    assert not np.allclose(q, hf, atol=1e-2)  # really permuted …
    assert np.allclose(undone, hf, atol=1e-3)  # … and only permuted


def test_transformers_loads_it_with_the_same_predictions(written: Path, tiny_model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What colour is the sky?"}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]  # fmt: skip
    source = AutoModelForCausalLM.from_pretrained(tiny_model)
    loaded = AutoModelForCausalLM.from_pretrained(written.parent, gguf_file=written.name)
    with torch.no_grad():
        a, b = source(ids).logits, loaded(ids).logits
    assert torch.equal(a.argmax(-1), b.argmax(-1)) and float((a - b).abs().max()) < 0.02


def test_an_architecture_it_cannot_write_is_refused_naming_the_way_out(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "other"
    shutil.copytree(tiny_model, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(InvalidArguments, match="format: GGUF export supports .* export format 'merged'"):
        write_gguf(folder, tmp_path / "x.gguf", "x")


def test_chat_template_drops_only_the_generation_markers(tiny_model: Path) -> None:
    original = (tiny_model / "chat_template.jinja").read_text()
    plain = chat_template(tiny_model)
    assert "{% generation %}" in original and plain is not None and "{% generation %}" not in plain
    assert plain == original.replace("{% generation %}", "").replace("{% endgeneration %}", "")
