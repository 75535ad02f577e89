"""The serving benchmark, side by side in one run, same GGUF file, prompt, greedy decoding
and thread count: generation tokens/s through a forge-served llama.cpp endpoint (the
OpenAI API over loopback HTTP, as a client sees it) against llama-cpp-python called
directly in this process, and against transformers `generate` on the same weights.

The model is a randomly initialised Llama with the tiny model's tokenizer, sized so that a
token costs real compute (~30M parameters by default): on a 164k-parameter model every
engine would measure its fixed per-request costs instead. Its output rows for special
tokens and for byte pieces that are not whole UTF-8 characters are zero, so greedy
decoding never picks them: every side generates exactly --tokens tokens of text. Each
repeat runs all sides, in rotating order; the report gives medians.

    make bench-serve
    python -m benchmarks.serve_tokens --tokens 128 --repeats 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

PROMPT = [{"role": "user", "content": "What colour is the apple?"}]
THREADS = 2
EOS_ID = 2


def build_model(folder: Path, tiny: Path, hidden: int, layers: int) -> int:
    """A Llama of the given size with the tiny model's tokenizer; random weights, fixed seed."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3, num_hidden_layers=layers,
                         num_attention_heads=hidden // 64, num_key_value_heads=hidden // 128, max_position_embeddings=1024,
                         tie_word_embeddings=False, eos_token_id=EOS_ID, pad_token_id=0, bos_token_id=None)  # fmt: skip
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # random rows have a positive maximum; a zero row never wins greedy decoding
        model.lm_head.weight[unusable_tokens(tokenizer)] = 0.0
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    if (tiny / "chat_template.jinja").is_file():
        shutil.copy(tiny / "chat_template.jinja", folder / "chat_template.jinja")
    return sum(p.numel() for p in model.parameters())


def unusable_tokens(tokenizer: Any) -> list[int]:
    """Special tokens (EOS ends a generation early) and byte-level pieces that do not decode
    to whole UTF-8 characters (llama-cpp-python keeps generating past max_tokens until a
    character is complete)."""
    decoder = {v: k for k, v in _byte_level_alphabet().items()}
    bad = []
    for token, index in tokenizer.get_vocab().items():
        try:
            bytes(decoder[c] for c in token).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            bad.append(index)
    return sorted(set(bad) | set(tokenizer.all_special_ids))


def _byte_level_alphabet() -> dict[int, str]:
    """GPT-2's byte → printable character map, which byte-level BPE vocabularies are spelled in."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


async def forge_setup(url: str) -> dict[str, Any]:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        registered = await client.call_tool("model_register", {"name": "bench", "path": "models/bench"})
        assert not registered.is_error, registered.content
        started = await client.call_tool("model_export", {"model": "bench@v1", "format": "gguf", "quantization": "q8_0"})
        job = (await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 600})).structured_content["job"]
        if job["state"] != "SUCCEEDED":
            raise SystemExit(f"the export failed: {job['error']}")
        served = await client.call_tool("serve_start", {"model": "bench@v1", "engine": "llama_cpp", "context_length": 1024})
        if served.is_error:
            raise SystemExit(f"serve_start failed: {served.content[0].text}")
    return {"export": job["result"], "service": served.structured_content}


async def forge_stop(url: str, job_id: str) -> None:
    from mcp import Client

    async with Client(f"{url}/mcp/") as client:
        await client.call_tool("serve_stop", {"service": job_id})


def via_forge(http: Any, service: dict[str, Any], tokens: int) -> tuple[int, float]:
    """One client for all requests, as an OpenAI client is used (building an httpx client
    loads TLS certificates: ~30 ms that would be charged to the server)."""
    body = {"model": service["model"], "messages": PROMPT, "max_tokens": tokens, "temperature": 0}
    started = time.perf_counter()
    reply = http.post(f"{service['url']}/chat/completions", json=body, headers={"Authorization": f"Bearer {service['api_key']}"})
    seconds = time.perf_counter() - started
    reply.raise_for_status()
    return reply.json()["usage"]["completion_tokens"], seconds


def via_llama_cpp(llm: Any, tokens: int) -> tuple[int, float]:
    started = time.perf_counter()
    out = llm.create_chat_completion(messages=PROMPT, max_tokens=tokens, temperature=0, repeat_penalty=1.0)
    return out["usage"]["completion_tokens"], time.perf_counter() - started


def via_transformers(model: Any, tokenizer: Any, tokens: int) -> tuple[int, float]:
    import torch

    inputs = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    started = time.perf_counter()
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=0)
    return int(out.shape[1] - inputs["input_ids"].shape[1]), time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--folder", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(THREADS))
    import torch

    torch.set_num_threads(THREADS)
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.server_process import ServerProcess

    home = (args.folder / "serve").resolve()
    tiny = args.folder.resolve() / "tiny-model"
    if not (tiny / "config.json").is_file():
        build_tiny_model(tiny)
    if (home / "forge.db").exists():
        import shutil

        shutil.rmtree(home)
    parameters = build_model(home / "models" / "bench", tiny, args.hidden, args.layers)
    print(f"bench model: {parameters:,} parameters (hidden {args.hidden}, {args.layers} layers)", flush=True)
    with ServerProcess(home, log_path=home.parent / "serve-bench-server.log") as server:
        setup = asyncio.run(forge_setup(server.url))
        service = setup["service"]
        gguf = home / setup["export"]["path"] / next(n for n in setup["export"]["files"] if n.endswith(".gguf"))
        from llama_cpp import Llama
        from transformers import AutoModelForCausalLM, AutoTokenizer

        llm = Llama(model_path=str(gguf), n_ctx=1024, n_threads=None, verbose=False)
        tokenizer = AutoTokenizer.from_pretrained(home / "models" / "bench")
        model = AutoModelForCausalLM.from_pretrained(home / "models" / "bench").eval()
        import httpx

        http = httpx.Client(timeout=600)
        sides = {"forge": lambda: via_forge(http, service, args.tokens), "llama_cpp": lambda: via_llama_cpp(llm, args.tokens),
                 "transformers": lambda: via_transformers(model, tokenizer, args.tokens)}  # fmt: skip
        for run in sides.values():  # warm-up: first calls pay for allocation
            run()
        rates: dict[str, list[float]] = {name: [] for name in sides}
        names = list(sides)
        for repeat in range(args.repeats):
            order = names[repeat % len(names) :] + names[: repeat % len(names)]
            for name in order:
                produced, seconds = sides[name]()
                if produced != args.tokens:
                    raise SystemExit(f"{name} produced {produced} tokens, not {args.tokens}; the comparison needs equal work")
                rates[name].append(produced / seconds)
            print(f"repeat {repeat + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f} tok/s" for n in names), flush=True)
        llm.close()
        asyncio.run(forge_stop(server.url, service["job_id"]))
    median = {name: statistics.median(values) for name, values in rates.items()}
    summary = {
        "parameters": parameters, "tokens": args.tokens, "repeats": args.repeats, "gguf": gguf.name,
        "tokens_per_second": {k: round(v, 1) for k, v in median.items()},
        "forge_vs_llama_cpp": round(median["forge"] / median["llama_cpp"], 3),
        "forge_vs_transformers": round(median["forge"] / median["transformers"], 3),
    }  # fmt: skip
    print(json.dumps(summary, indent=2))
    print(f"\nforge-served llama.cpp: {summary['forge_vs_llama_cpp']}× llama-cpp-python direct (goal ≥ 0.95×), "
          f"{summary['forge_vs_transformers']}× transformers generate")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
