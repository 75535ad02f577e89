"""Write a Hugging Face Llama-family folder (safetensors, tokenizer.json) as an f16 GGUF file
that llama.cpp loads, with the `gguf` package: metadata, tokenizer, tensors.

The `gguf` package has a writer but no converter, and llama.cpp's own converter is a script
outside any package; this is the part of it a llama-architecture model needs. Two details
matter: llama.cpp expects the rows of the Q and K projections in its own rotary order (the
permutation below), and a chat template must be plain Jinja (transformers' `{% generation %}`
markers, used for assistant-only loss, are not Jinja and would break llama.cpp's chat).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from forge_mcp.errors import InvalidArguments

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
GENERATION_MARKERS = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
# tensor name in the HF checkpoint (after "model.layers.N.") -> GGUF name (after "blk.N.")
LAYER_TENSORS = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                  "lm_head.weight": "output.weight"}  # fmt: skip


def write_gguf(model_dir: Path, out_file: Path, name: str) -> dict[str, Any]:
    """f16 weights (norms stay f32, as llama.cpp wants). Returns what was written."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    architecture = (config.get("architectures") or ["?"])[0]
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise InvalidArguments(f"format: GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)}, not {architecture}; "
                               "export format 'merged' and convert it with llama.cpp's convert_hf_to_gguf.py")  # fmt: skip
    heads, kv_heads = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // heads
    rope = config.get("rope_parameters") or {}
    tensors: dict[str, Any] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(file))

    writer = gguf.GGUFWriter(str(out_file), "llama")
    # -- metadata ---------------------------------------------------------------------
    writer.add_name(name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(hidden)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta", config.get("rope_theta", 10000.0))))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # -- tokenizer --------------------------------------------------------------------
    _add_tokenizer(writer, model_dir, config)
    # -- tensors ----------------------------------------------------------------------
    written = 0
    for hf_name, array in tensors.items():
        target = _gguf_name(hf_name)
        if target is None:
            raise InvalidArguments(f"format: tensor {hf_name} has no GGUF name in the llama layout; export 'merged' instead")
        if target == "output.weight" and config.get("tie_word_embeddings"):
            continue  # tied: llama.cpp reuses token_embd
        data = array.astype(np.float32)
        if target.endswith("attn_q.weight"):
            data = _rotary_rows(data, heads)
        elif target.endswith("attn_k.weight"):
            data = _rotary_rows(data, kv_heads)
        writer.add_tensor(target, data if data.ndim == 1 else data.astype(np.float16))
        written += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"tensors": written, "architecture": architecture, "bytes": out_file.stat().st_size}


def _gguf_name(hf_name: str) -> str | None:
    if hf_name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[hf_name]
    match = re.fullmatch(r"model\.layers\.(\d+)\.(.+)", hf_name)
    if match and match.group(2) in LAYER_TENSORS:
        return f"blk.{match.group(1)}.{LAYER_TENSORS[match.group(2)]}"
    return None


def _rotary_rows(weights: Any, n_head: int) -> Any:
    """HF stores each head's rotary pairs as two halves; llama.cpp interleaves them."""
    rows = weights.shape[0]
    return weights.reshape(n_head, 2, rows // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _add_tokenizer(writer: Any, model_dir: Path, config: dict[str, Any]) -> None:
    import gguf

    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    model = tokenizer["model"]
    if model.get("type") != "BPE" or (tokenizer.get("pre_tokenizer") or {}).get("type") not in ("ByteLevel", "Sequence"):
        raise InvalidArguments("format: GGUF export supports byte-level BPE tokenizers (GPT-2 style) only; "
                               "export 'merged' and convert it with llama.cpp's converter")  # fmt: skip
    vocab: dict[str, int] = model["vocab"]
    size = config["vocab_size"]
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [gguf.TokenType.UNUSED] * size
    for text, index in vocab.items():
        tokens[index], types[index] = text, gguf.TokenType.NORMAL
    for added in tokenizer.get("added_tokens", []):
        tokens[added["id"]] = added["content"]
        types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if config.get("bos_token_id") is not None:
        writer.add_bos_token_id(config["bos_token_id"])
    writer.add_add_bos_token(False)
    eos = config.get("eos_token_id")
    if isinstance(eos, list):
        eos = eos[0]
    if eos is not None:
        writer.add_eos_token_id(eos)
    if config.get("pad_token_id") is not None:
        writer.add_pad_token_id(config["pad_token_id"])
    template = chat_template(model_dir)
    if template:
        writer.add_chat_template(template)


def chat_template(model_dir: Path) -> str | None:
    """The folder's chat template as plain Jinja (without transformers' generation markers)."""
    file = model_dir / "chat_template.jinja"
    if file.is_file():
        template = file.read_text()
    else:
        template = json.loads((model_dir / "tokenizer_config.json").read_text()).get("chat_template")
    return GENERATION_MARKERS.sub("", template) if isinstance(template, str) else None
