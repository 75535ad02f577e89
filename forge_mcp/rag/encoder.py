"""Embeddings from a local model: transformers' AutoModel from a folder on disk
(local_files_only, no remote code), the last hidden states mean-pooled over the attention
mask and L2-normalised, so a dot product is the cosine similarity.

Any model folder transformers loads works: a sentence encoder (BERT, MiniLM, E5, …) or a
causal language model, such as a registered version (an adapter is merged into its base
first). Nothing is downloaded, ever."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.rag.limits import EMBED_BATCH

DEFAULT_MAX_TOKENS = 512  # when neither the tokenizer nor the config says how long an input may be
CACHED_ENCODERS = 2  # loaded models the server keeps for queries


@dataclass(frozen=True)
class ModelFiles:
    """Where an embedding model's files are: a folder, and an adapter folder applied to it."""

    model: Path
    adapter: Path | None = None


class LocalEncoder:
    """One loaded model; `embed` is safe to call from one thread at a time (the cache locks)."""

    def __init__(self, files: ModelFiles) -> None:
        require_extra("rag", "embedding with a local model")
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # "Loading weights" bars in a worker's log or the server's stderr
        if not (files.model / "config.json").is_file():
            raise InvalidArguments("embedding_model: the folder has no config.json; give a Hugging Face model folder "
                                   "(an encoder, or a language model) or a registered version '<name>@v<N>'")  # fmt: skip
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(files.adapter or files.model), local_files_only=True,
                                                       trust_remote_code=False)  # fmt: skip
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.model = _load(files)
        self.model.eval()
        limit = getattr(self.model.config, "max_position_embeddings", None) or DEFAULT_MAX_TOKENS
        told = self.tokenizer.model_max_length
        self.max_tokens = int(min(limit, told)) if isinstance(told, int) and told < 1_000_000 else int(limit)
        self.dimensions = int(self.model.config.hidden_size)
        self.truncated = 0  # texts cut to max_tokens so far

    def embed(self, texts: Sequence[str], *, batch: int = EMBED_BATCH,
              progress: Callable[[int], None] | None = None) -> list[list[float]]:  # fmt: skip
        """One unit vector per text, in order; `progress(done)` after each batch."""
        torch = self._torch
        out: list[list[float]] = []
        for first in range(0, len(texts), batch):
            encoded = self.tokenizer(list(texts[first : first + batch]), padding=True, truncation=True,
                                     max_length=self.max_tokens, return_tensors="pt")  # fmt: skip
            lengths = self.tokenizer(list(texts[first : first + batch]), verbose=False)["input_ids"]
            self.truncated += sum(1 for ids in lengths if len(ids) > self.max_tokens)
            with torch.inference_mode():
                hidden = self.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out += torch.nn.functional.normalize(pooled.float(), dim=-1).tolist()
            if progress is not None:
                progress(len(out))
        return out


def _load(files: ModelFiles) -> Any:
    from transformers import AutoModel

    if files.adapter is None:
        return AutoModel.from_pretrained(str(files.model), local_files_only=True, trust_remote_code=False)
    # An adapter was trained on the causal LM: apply it there, merge, and keep the body (no LM head).
    require_extra("train", "embedding with an adapter version")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(str(files.model), local_files_only=True, trust_remote_code=False)
    merged = PeftModel.from_pretrained(base, str(files.adapter)).merge_and_unload()
    return merged.base_model


class EncoderCache:
    """The server's loaded models for queries, the most recently used kept (a query embeds one
    text; loading the model is the cost)."""

    def __init__(self, size: int = CACHED_ENCODERS, load: Callable[[ModelFiles], LocalEncoder] = LocalEncoder) -> None:
        self._size = size
        self._load = load
        self._encoders: OrderedDict[ModelFiles, LocalEncoder] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, files: ModelFiles, texts: Sequence[str]) -> list[list[float]]:
        """Blocking (load and forward pass): call it from a worker thread."""
        with self._lock:
            encoder = self._encoders.get(files)
            if encoder is None:
                encoder = self._load(files)
                self._encoders[files] = encoder
                while len(self._encoders) > self._size:
                    self._encoders.popitem(last=False)
            self._encoders.move_to_end(files)
            return encoder.embed(texts)
