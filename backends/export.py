"""Export a registered model version, inside a job worker: the LoRA adapter as it is, a
merged safetensors folder, or a GGUF file (f16, or quantised with llama.cpp's quantiser)
with an Ollama Modelfile. Every export is loaded back and its next-token predictions on
fixed prompts are compared with the source model's; the comparison goes into the manifest,
and an export that disagrees more than its format allows fails the job.

Reads top to bottom: load the source, write the export, load it back and compare, manifest.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.jobs.context import JobContext
from forge_mcp.training.checkpoints import file_sha256

Format = Literal["adapter", "merged", "gguf"]
Quantization = Literal["f16", "q8_0", "q4_k_m"]
MANIFEST = "manifest.json"
# Fixed prompts the source and the export both read; every position's next token is compared.
VERIFY_CHATS = (
    [{"role": "user", "content": "What colour is the apple?"}],
    [{"role": "user", "content": "What is 3 plus 4?"}],
    [{"role": "system", "content": "You answer in one word."}, {"role": "user", "content": "Name a colour."}],
)
VERIFY_TEXTS = ("The quick brown fox jumps over the lazy dog.",)
# The least share of positions where the export's top next token must equal the source's.
# Exact copies and float re-encodings agree everywhere but on near-ties; quantisation moves
# logits, most on a tiny model whose rows are too short for llama.cpp's k-quant blocks.
MIN_TOP1_AGREEMENT: dict[str, float] = {"adapter": 1.0, "merged": 0.98, "f16": 0.98, "q8_0": 0.95, "q4_k_m": 0.75}
LLAMA_FTYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}


class Verification(BaseModel):
    prompts: int
    positions: int = Field(description="Next-token positions compared")
    top1_agreement: float = Field(description="Share of positions where the export's most likely token is the source's")
    max_abs_logit_diff: float
    threshold: float
    passed: bool
    tokenizer_matches: bool | None = Field(None, description="GGUF: llama.cpp's tokenizer gives the same ids as the source's")


class ExportResult(BaseModel):
    model: str
    format: Format
    quantization: Quantization | None
    path: str = Field(description="Where the export is, inside the workspace (moved there when the job succeeds)")
    files: dict[str, int] = Field(description="File name -> bytes")
    verification: Verification
    modelfile: str | None = Field(None, description="The Ollama Modelfile, for GGUF exports")
    pushed_to: str | None = None
    seconds: float


def export(job: JobContext, model_id: str, model_path: Path, adapter_path: Path | None, fmt: Format,
           quantization: Quantization | None, push_to_hub: str | None) -> ExportResult:  # fmt: skip
    started = time.monotonic()
    out = job.run.export
    shutil.rmtree(out, ignore_errors=True)  # a retry starts over: exports are quick next to training
    out.mkdir(parents=True)
    # -- load the source --------------------------------------------------------------
    job.progress(0, 4, "loading the source model")
    tokenizer, source = _load(model_path, adapter_path)
    sequences = _verify_sequences(tokenizer)
    expected = _logits(source, sequences)
    # -- write the export -------------------------------------------------------------
    job.progress(1, 4, f"writing the {fmt} export")
    job.check_canceled()
    if fmt == "adapter":
        if adapter_path is None:
            raise InvalidArguments(f"format: {model_id} holds full weights, not an adapter; export 'merged' or 'gguf'")
        _copy_folder(adapter_path, out)
    else:
        merged = out if fmt == "merged" else job.run.merged
        if fmt == "gguf":
            shutil.rmtree(merged, ignore_errors=True)
        _save_merged(source, tokenizer, merged)
        if fmt == "gguf":
            gguf_file = _write_gguf(job, merged, out, model_id, quantization or "f16")
            shutil.rmtree(merged, ignore_errors=True)
    # -- load it back and compare -----------------------------------------------------
    job.progress(2, 4, "loading the export back and comparing next-token predictions")
    job.check_canceled()
    if fmt == "gguf":
        actual, tokenizer_matches = _gguf_logits(gguf_file, sequences, tokenizer)
    else:
        _, reloaded = _load(model_path if fmt == "adapter" else out, out if fmt == "adapter" else None)
        actual, tokenizer_matches = _logits(reloaded, sequences), None
    verification = _compare(expected, actual, MIN_TOP1_AGREEMENT[quantization or "f16" if fmt == "gguf" else fmt],
                            len(sequences), tokenizer_matches)  # fmt: skip
    # -- manifest ---------------------------------------------------------------------
    modelfile = _write_modelfile(out, gguf_file, model_path) if fmt == "gguf" else None
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    manifest = {"model": model_id, "format": fmt, "quantization": quantization if fmt == "gguf" else None,
                "verification": verification.model_dump(), "created_at": time.time(),
                "sha256": {name: file_sha256(out / name) for name in files}, "versions": _versions(fmt)}  # fmt: skip
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if not verification.passed:
        raise ForgeError(f"the {fmt} export disagrees with the source: top-1 next-token agreement "
                         f"{verification.top1_agreement:.3f} is under {verification.threshold} "
                         f"({verification.positions} positions); the files are in {job.run.shown(out)} for inspection")  # fmt: skip
    pushed_to = None
    if push_to_hub:
        job.progress(3, 4, f"pushing to the Hugging Face Hub as {push_to_hub}")
        pushed_to = _push(out, push_to_hub)
    job.progress(4, 4, "export verified")
    return ExportResult(model=model_id, format=fmt, quantization=manifest["quantization"],
                        path=job.run.shown(out), files={**files, MANIFEST: (out / MANIFEST).stat().st_size},
                        verification=verification, modelfile=modelfile, pushed_to=pushed_to,
                        seconds=round(time.monotonic() - started, 2))  # fmt: skip


def _load(model_path: Path, adapter_path: Path | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(adapter_path or model_path, local_files_only=True, trust_remote_code=False)
    model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
    if adapter_path is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_path)
    return tokenizer, model.eval()


def _verify_sequences(tokenizer: Any) -> list[list[int]]:
    chats = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
             for c in VERIFY_CHATS]  # fmt: skip
    return [list(ids) for ids in chats] + [tokenizer(text)["input_ids"] for text in VERIFY_TEXTS]


def _logits(model: Any, sequences: list[list[int]]) -> list[Any]:
    import torch

    with torch.no_grad():
        return [model(torch.tensor([ids])).logits[0].float().numpy() for ids in sequences]


def _save_merged(source: Any, tokenizer: Any, folder: Path) -> None:
    # A PeftModel: fold the adapter into the weights, in place (the source's logits are taken already).
    model = source.merge_and_unload() if hasattr(source, "merge_and_unload") else source
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _write_gguf(job: JobContext, merged: Path, out: Path, model_id: str, quantization: str) -> Path:
    from forge_mcp.backends.gguf_writer import write_gguf

    name = model_id.replace("@", "-")
    f16 = out / f"{name}-f16.gguf"
    write_gguf(merged, f16, model_id)
    if quantization == "f16":
        return f16
    try:
        import llama_cpp
    except ImportError:
        raise InvalidArguments(f"quantization: {quantization} needs llama.cpp's quantiser; "
                               "pip install 'forge-mcp[llamacpp]', or export quantization f16") from None  # fmt: skip
    import ctypes

    job.progress(1.5, 4, f"quantising to {quantization} with llama.cpp")
    target = out / f"{name}-{quantization}.gguf"
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, LLAMA_FTYPES[quantization])
    code = llama_cpp.llama_model_quantize(str(f16).encode(), str(target).encode(), ctypes.byref(params))
    if code != 0:
        raise ForgeError(f"llama.cpp's quantiser failed with code {code} (job_logs has its output)")
    f16.unlink()
    return target


def _gguf_logits(gguf_file: Path, sequences: list[list[int]], tokenizer: Any) -> tuple[list[Any], bool]:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise InvalidArguments("format: verifying a GGUF export needs llama.cpp: pip install 'forge-mcp[llamacpp]'") from None
    import numpy as np

    llm = Llama(model_path=str(gguf_file), n_ctx=512, logits_all=True, verbose=False, n_threads=2)
    out = []
    for ids in sequences:
        llm.reset()
        llm.eval(ids)
        out.append(np.array(llm.scores[: len(ids)], dtype=np.float32))
    text = VERIFY_TEXTS[0]
    matches = llm.tokenize(text.encode(), add_bos=False, special=True) == tokenizer(text)["input_ids"]
    llm.close()
    return out, matches


def _compare(expected: list[Any], actual: list[Any], threshold: float, prompts: int, tokenizer_matches: bool | None) -> Verification:
    import numpy as np

    same = sum(int((e.argmax(-1) == a.argmax(-1)).sum()) for e, a in zip(expected, actual, strict=True))
    positions = sum(len(e) for e in expected)
    diff = max(float(np.abs(e - a).max()) for e, a in zip(expected, actual, strict=True))
    agreement = round(same / positions, 4)
    return Verification(prompts=prompts, positions=positions, top1_agreement=agreement, max_abs_logit_diff=round(diff, 5),
                        threshold=threshold, passed=agreement >= threshold and tokenizer_matches is not False,
                        tokenizer_matches=tokenizer_matches)  # fmt: skip


def _write_modelfile(out: Path, gguf_file: Path, model_path: Path) -> str:
    """For `ollama create NAME -f Modelfile` in the export folder. ChatML models get their
    template spelled in Ollama's syntax; others rely on the template stored in the GGUF."""
    from forge_mcp.backends.gguf_writer import chat_template

    lines = [f"FROM ./{gguf_file.name}"]
    if "<|im_start|>" in (chat_template(model_path) or ""):
        lines += ['TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}', '{{ .Content }}<|im_end|>',
                  '{{ end }}<|im_start|>assistant', '"""', 'PARAMETER stop "<|im_end|>"']  # fmt: skip
    text = "\n".join(lines) + "\n"
    (out / "Modelfile").write_text(text)
    return text


def _copy_folder(source: Path, target: Path) -> None:
    """`source` was checked entry by entry (export_job); each file is read at its resolved place
    and written anew, never through a link."""
    from forge_mcp.security.confinement import copy_file

    for item in source.iterdir():
        if item.is_file() and item.name != MANIFEST:
            copy_file(item.resolve(), target / item.name)


def _push(folder: Path, repo_id: str) -> str:
    from huggingface_hub import HfApi

    try:
        api = HfApi()
        api.create_repo(repo_id, exist_ok=True, private=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except Exception as exc:  # network, auth, quota: the export itself stays valid
        raise ForgeError(f"push_to_hub: uploading to {repo_id} failed ({type(exc).__name__}: {str(exc)[:200]}); "
                         "the verified export is kept in the job's folder") from None  # fmt: skip
    return f"https://huggingface.co/{repo_id}"


def _versions(fmt: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "transformers", "peft") + (("gguf", "llama_cpp_python") if fmt == "gguf" else ())
    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
