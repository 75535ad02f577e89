"""The optional extras of the distribution, and whether each is installed.

Detection uses importlib's finder only, so asking never imports torch or its friends."""

from __future__ import annotations

import importlib.util

from pydantic import BaseModel

from forge_mcp.errors import MissingExtra

# extra -> (what it enables, modules that must all be importable)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "train": ("SFT/DPO/CPT training with transformers, peft and trl", ("torch", "transformers", "peft", "trl")),
    "mlx": ("training and serving with mlx-lm", ("mlx", "mlx_lm")),
    "sweep": ("hyperparameter sweeps with optuna", ("optuna",)),
    "rag": ("retrieval indexes: chromadb, embedded with a local model (torch, transformers)",
            ("chromadb", "torch", "transformers")),
    "agent": ("the chat operator (langgraph + litellm)", ("langgraph", "litellm")),
    "remote": ("SSH compute hosts (paramiko)", ("paramiko",)),
    "ray": ("Ray cluster compute targets", ("ray",)),
    "llamacpp": ("GGUF quantisation and llama.cpp serving", ("llama_cpp",)),
}


class ExtraStatus(BaseModel):
    name: str
    purpose: str
    installed: bool
    missing_modules: list[str]


def _missing(modules: tuple[str, ...]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def extras_status() -> list[ExtraStatus]:
    out = []
    for name, (purpose, modules) in EXTRAS.items():
        missing = _missing(modules)
        out.append(ExtraStatus(name=name, purpose=purpose, installed=not missing, missing_modules=missing))
    return out


def require_extra(extra: str, feature: str) -> None:
    """Raise MissingExtra naming the extra when any of its modules is absent."""
    if _missing(EXTRAS[extra][1]):
        raise MissingExtra(feature, extra)
