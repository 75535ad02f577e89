"""The in-process serving engines: llama.cpp on a GGUF file, transformers on a model folder
(a LoRA adapter applied without merging), mlx-lm on Apple silicon. Each answers OpenAI
chat requests in OpenAI's shapes; heavy imports happen in the constructors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from forge_mcp.serving.openai_app import ChatRequest, chunk, completion


class LlamaCppEngine:
    """llama-cpp-python: its chat completion already speaks OpenAI, with the chat template
    stored in the GGUF."""

    def __init__(self, gguf_file: Path, model_id: str, n_ctx: int, threads: int | None) -> None:
        from llama_cpp import Llama

        self.model_id = model_id
        self.llm = Llama(model_path=str(gguf_file), n_ctx=n_ctx, n_threads=threads, verbose=False)

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        return {"messages": [m.model_dump() for m in request.messages], "max_tokens": request.limit,
                "temperature": request.temperature, "top_p": request.top_p, "stop": request.stops or None,
                "seed": request.seed, "repeat_penalty": 1.0}  # OpenAI semantics: llama-cpp-python defaults to 1.1  # fmt: skip

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        return {**self.llm.create_chat_completion(**self._arguments(request)), "model": self.model_id}

    def stream(self, request: ChatRequest) -> Iterator[dict[str, Any]]:
        for piece in self.llm.create_chat_completion(**self._arguments(request), stream=True):
            yield {**piece, "model": self.model_id}


class TransformersEngine:
    """transformers `generate`, with TextIteratorStreamer for streaming."""

    def __init__(self, model_path: Path, adapter_path: Path | None, model_id: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = model_id
        self.tokenizer = AutoTokenizer.from_pretrained(adapter_path or model_path, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(model_path, local_files_only=True, trust_remote_code=False)
        if adapter_path is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, adapter_path)  # served as is: base and adapter stay apart
        self.model = model.eval()

    def _inputs(self, request: ChatRequest) -> tuple[dict[str, Any], dict[str, Any]]:
        import torch

        if request.seed is not None:
            torch.manual_seed(request.seed)
        inputs = self.tokenizer.apply_chat_template([m.model_dump() for m in request.messages], add_generation_prompt=True,
                                                    return_dict=True, return_tensors="pt")  # fmt: skip
        sampling = {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p} if request.temperature > 0 else {"do_sample": False}
        options = {"max_new_tokens": request.limit, "pad_token_id": self.tokenizer.pad_token_id, **sampling}
        if request.stops:
            options.update(stop_strings=request.stops, tokenizer=self.tokenizer)
        return inputs, options

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        import torch

        inputs, options = self._inputs(request)
        with torch.no_grad():
            out = self.model.generate(**inputs, **options)
        new = out[0][inputs["input_ids"].shape[1] :]
        text = _cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), request.stops)
        finish = "length" if len(new) >= request.limit else "stop"
        return completion(self.model_id, text, int(inputs["input_ids"].shape[1]), len(new), finish)

    def stream(self, request: ChatRequest) -> Iterator[dict[str, Any]]:
        import torch
        from transformers import TextIteratorStreamer

        inputs, options = self._inputs(request)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        produced: list[int] = []

        def run() -> None:
            with torch.no_grad():
                out = self.model.generate(**inputs, **options, streamer=streamer)
            produced.append(int(out.shape[1] - inputs["input_ids"].shape[1]))

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        chunk_id = f"chatcmpl-{time.time_ns():x}"
        yield chunk(self.model_id, chunk_id, {"role": "assistant", "content": ""})
        for text in streamer:
            if text:
                yield chunk(self.model_id, chunk_id, {"content": text})
        worker.join()
        yield chunk(self.model_id, chunk_id, {}, "length" if produced and produced[0] >= request.limit else "stop")


class MlxEngine:
    """mlx-lm on Apple silicon (or mlx's CPU build): a model folder, or an mlx-format adapter."""

    def __init__(self, model_path: Path, adapter_path: Path | None, model_id: str) -> None:
        from mlx_lm import load

        self.model_id = model_id
        self.model, self.tokenizer = load(str(model_path), adapter_path=str(adapter_path) if adapter_path else None)

    def _generate(self, request: ChatRequest) -> Iterator[Any]:
        from mlx_lm import stream_generate
        from mlx_lm.sample_utils import make_sampler

        prompt = self.tokenizer.apply_chat_template([m.model_dump() for m in request.messages], add_generation_prompt=True)
        sampler = make_sampler(temp=request.temperature, top_p=request.top_p)
        return stream_generate(self.model, self.tokenizer, prompt, max_tokens=request.limit, sampler=sampler)

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        text, last = "", None
        for last in self._generate(request):
            text += last.text
        prompt_tokens = getattr(last, "prompt_tokens", 0) if last else 0
        produced = getattr(last, "generation_tokens", 0) if last else 0
        finish = "length" if produced >= request.limit else "stop"
        return completion(self.model_id, _cut_at_stop(text, request.stops), prompt_tokens, produced, finish)

    def stream(self, request: ChatRequest) -> Iterator[dict[str, Any]]:
        chunk_id = f"chatcmpl-{time.time_ns():x}"
        yield chunk(self.model_id, chunk_id, {"role": "assistant", "content": ""})
        produced = 0
        for piece in self._generate(request):
            produced = getattr(piece, "generation_tokens", produced)
            if piece.text:
                yield chunk(self.model_id, chunk_id, {"content": piece.text})
        yield chunk(self.model_id, chunk_id, {}, "length" if produced >= request.limit else "stop")


def _cut_at_stop(text: str, stops: list[str]) -> str:
    cuts = [text.index(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text
