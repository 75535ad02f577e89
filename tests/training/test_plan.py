"""train_plan's arithmetic: the adapter size is exact, a run that will not fit gets
suggestions that name the fields to change, and each backend refuses what it cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.plan import choose_backend, estimate_memory, lora_parameters, read_base_model, suggestions
from forge_mcp.training.spec import resolve_spec

SPEC = {"base_model": "models/tiny", "dataset": "d"}


def test_lora_parameter_count_matches_peft(tiny_model: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    config = json.loads((tiny_model / "config.json").read_text())
    for r, targets in ((8, "all-linear"), (4, ["q_proj", "v_proj"])):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model),
                               LoraConfig(r=r, target_modules=targets, task_type="CAUSAL_LM"))  # fmt: skip
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert lora_parameters(config, r, targets) == trainable


def test_the_base_model_is_read_without_loading_it(tiny_model: Path) -> None:
    base = read_base_model(tiny_model, "models/tiny")
    assert base.parameters == 164_160 and base.layers == 2 and base.max_positions == 512 and base.weights_dtype == "F32"


def test_a_run_that_does_not_fit_says_what_to_change(tiny_model: Path) -> None:
    spec = resolve_spec({**SPEC, "adapter": "full", "batch_size": 16, "max_length": 4096})
    base = read_base_model(tiny_model, "models/tiny")
    memory = estimate_memory(spec, base, "cuda", "bfloat16", base.parameters, available_gib=0.01)
    assert not memory.fits and memory.total_gib > memory.weights_gib
    advice = " ".join(suggestions(spec, memory, "cuda"))
    for field in ("adapter: lora", "adapter: qlora", "batch_size: 4 with gradient_accumulation 4",
                  "gradient_checkpointing: true", "max_length: 2048"):  # fmt: skip
        assert field in advice, advice


def test_each_backend_refuses_what_it_cannot_do() -> None:
    assert choose_backend(resolve_spec(SPEC), gpus=1, mlx_metal=False) == ("hf", "cuda")
    assert choose_backend(resolve_spec(SPEC), gpus=0, mlx_metal=True) == ("mlx", "mlx")
    assert choose_backend(resolve_spec(SPEC), gpus=0, mlx_metal=False) == ("hf", "cpu")
    with pytest.raises(InvalidArguments, match="backend: dpo is not supported on mlx yet; use backend hf"):
        choose_backend(resolve_spec({**SPEC, "method": "dpo", "backend": "mlx"}), gpus=0, mlx_metal=False)
    with pytest.raises(InvalidArguments, match="adapter qlora is not supported on mlx yet"):
        choose_backend(resolve_spec({**SPEC, "adapter": "qlora", "backend": "mlx"}), gpus=0, mlx_metal=False)
    with pytest.raises(InvalidArguments, match="early_stopping_patience, packing and report_to are hf features"):
        choose_backend(resolve_spec({**SPEC, "backend": "mlx", "eval_split": "test", "early_stopping_patience": 2}),
                       gpus=0, mlx_metal=False)  # fmt: skip
