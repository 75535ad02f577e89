"""Verified checkpoints. The trainer writes checkpoint-N folders; once one is complete a
manifest (sha256 of every file, fsynced, written last by rename) marks it so. Resume takes
the newest folder whose manifest verifies, so a crash mid-save costs one interval, never
a corrupt restore."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

MANIFEST = "forge_manifest.json"
CHECKPOINTS_PER_RUN = 10
# A save costs tens of milliseconds even on the tiny model, as much as a few of its steps: a
# short run checkpointing every few steps would spend a quarter of its time saving, to protect
# seconds of work.
MIN_SAVE_INTERVAL = 50


def save_interval(save_steps: int | None, total_steps: int) -> int:
    """Steps between checkpoints: the spec's save_steps, else about ten a run, at least
    MIN_SAVE_INTERVAL apart (a run shorter than that saves only its result)."""
    return save_steps or max(MIN_SAVE_INTERVAL, total_steps // CHECKPOINTS_PER_RUN)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path, step: int) -> None:
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        with path.open("rb") as f:
            os.fsync(f.fileno())
        files[str(path.relative_to(folder))] = file_sha256(path)
    temporary = folder / f".{MANIFEST}.tmp"
    with temporary.open("w") as f:
        json.dump({"step": step, "files": files}, f)
        f.flush()
        os.fsync(f.fileno())
    temporary.rename(folder / MANIFEST)


def verify(folder: Path) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        return all(file_sha256(folder / name) == digest for name, digest in manifest["files"].items())
    except (OSError, ValueError, KeyError):
        return False


def newest_verified(checkpoints: Path) -> Path | None:
    if not checkpoints.is_dir():
        return None
    candidates = [p for p in checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    for folder in sorted(candidates, key=lambda p: int(p.name.split("-")[-1]), reverse=True):
        if verify(folder):
            return folder
    return None
