"""train_plan's arithmetic: the adapter size is exact, a run that will not fit gets
suggestions that name the fields to change, and each backend refuses what it cannot do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.plan import (
    check_batch,
    check_fit,
    choose_backend,
    estimate_memory,
    lora_parameters,
    needs_reference_model,
    read_base_model,
    suggestions,
)
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
    for method in ("dpo", "orpo", "kto", "reward", "grpo"):
        extra = {"rewards": [{"name": "exact_match"}]} if method == "grpo" else {}
        with pytest.raises(InvalidArguments, match=f"backend: mlx-lm trains sft and cpt only, not {method}; use backend hf"):
            choose_backend(resolve_spec({**SPEC, "method": method, "backend": "mlx", **extra}), gpus=0, mlx_metal=True)
        # auto on Apple Silicon runs what mlx cannot on hf
        assert choose_backend(resolve_spec({**SPEC, "method": method, **extra}), gpus=0, mlx_metal=True) == ("hf", "cpu")
    with pytest.raises(InvalidArguments, match="adapter qlora is not supported on mlx yet"):
        choose_backend(resolve_spec({**SPEC, "adapter": "qlora", "backend": "mlx"}), gpus=0, mlx_metal=False)
    with pytest.raises(InvalidArguments, match="early_stopping_patience, packing and report_to are hf features"):
        choose_backend(resolve_spec({**SPEC, "backend": "mlx", "eval_split": "test", "early_stopping_patience": 2}),
                       gpus=0, mlx_metal=False)  # fmt: skip


def test_each_method_learns_from_its_data_kinds_and_a_misfit_names_the_methods_that_fit(tiny_model: Path) -> None:
    base = read_base_model(tiny_model, "models/tiny")
    grpo = {"rewards": [{"name": "exact_match"}], "max_length": 128}
    assert check_fit(resolve_spec({**SPEC, "method": "kto", "max_length": 128}), "labeled", base) == []
    assert check_fit(resolve_spec({**SPEC, "method": "kto", "max_length": 128}), "preference", base) == []
    assert check_fit(resolve_spec({**SPEC, "method": "grpo", **grpo}), "alpaca", base) == []  # trains as messages
    [problem] = check_fit(resolve_spec({**SPEC, "method": "orpo", "max_length": 128}), "messages", base)
    assert problem == ("dataset: orpo learns from preference data, and d is messages; use method sft or cpt or grpo "
                       "for it, or prepare a preference dataset")  # fmt: skip
    [problem] = check_fit(resolve_spec({**SPEC, "method": "grpo", **grpo}), "labeled", base)
    assert "use method kto for it" in problem


def test_grpo_batches_hold_whole_groups_of_sampled_answers() -> None:
    spec = resolve_spec({**SPEC, "method": "grpo", "rewards": [{"name": "exact_match"}], "batch_size": 6, "num_generations": 4})
    [problem] = check_batch(spec, processes=1)
    assert problem.startswith("batch_size: grpo samples 4 answers per prompt") and "(6)" in problem
    assert check_batch(spec, processes=2) == []  # 12 answers: three whole groups
    assert check_batch(resolve_spec({**SPEC, "batch_size": 3}), processes=1) == []  # only grpo groups


def test_pairs_cost_two_sequences_and_a_reference_model_only_where_the_method_keeps_one(tiny_model: Path) -> None:
    base = read_base_model(tiny_model, "models/tiny")

    def total(**fields: object) -> float:
        spec = resolve_spec({**SPEC, "max_length": 256, **fields})
        return estimate_memory(spec, base, "cpu", "float32", base.parameters, None).activations_gib

    assert total(method="orpo") == total(method="kto") == total(method="reward") == total(method="dpo") == 2 * total()
    grpo = {"method": "grpo", "rewards": [{"name": "exact_match"}], "adapter": "full"}
    assert needs_reference_model(resolve_spec({**SPEC, **grpo})) is False  # beta 0: no KL, no reference
    assert needs_reference_model(resolve_spec({**SPEC, **grpo, "beta": 0.04})) is True
    assert needs_reference_model(resolve_spec({**SPEC, "method": "orpo"})) is False
    assert needs_reference_model(resolve_spec({**SPEC, "method": "kto"})) is True


def test_cuda_kernels_are_chosen_only_on_cuda_where_installed_and_never_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from forge_mcp.backends.hf_train import cuda_kernels
    from forge_mcp.training.plan import TrainPlan

    def plan(device: str, dtype: str, kernels: str = "auto") -> TrainPlan:
        return TrainPlan.model_construct(spec=resolve_spec({**SPEC, "kernels": kernels}), device=device, dtype=dtype)

    installed = {"liger_kernel", "flash_attn"}
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in installed else real(name, *a))
    assert cuda_kernels(plan("cuda", "bfloat16")) == ["liger", "flash_attention_2"]
    assert cuda_kernels(plan("cuda", "float32")) == ["liger"]  # flash attention needs 16-bit weights
    assert cuda_kernels(plan("cpu", "float32")) == [] and cuda_kernels(plan("cuda", "bfloat16", "off")) == []
    installed.clear()
    assert cuda_kernels(plan("cuda", "bfloat16")) == []  # nothing installed: plain attention, no patching
