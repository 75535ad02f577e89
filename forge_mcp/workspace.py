"""The workspace folder and the one place where paths given by agents are resolved.

A path from a client is untrusted. It is accepted only when it lands inside the
workspace or inside an import root the operator allowlisted, after symlinks are
followed. Refusals never echo host paths back: they name the argument and the fix.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forge_mcp.errors import PathRefused

DATABASE_NAME = "forge.db"
SUBDIRS = ("datasets", "runs", "models")
MAX_PATH_CHARS = 1024
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


@dataclass(frozen=True)
class WorkspaceCounts:
    datasets: int
    runs: int
    models: int


class Workspace:
    def __init__(self, root: Path, import_roots: list[Path] | tuple[Path, ...] = ()) -> None:
        self.root = root.expanduser().resolve()
        self.import_roots = tuple(p.expanduser().resolve() for p in import_roots)

    @property
    def database_path(self) -> Path:
        return self.root / DATABASE_NAME

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in SUBDIRS:
            (self.root / name).mkdir(exist_ok=True)

    def counts(self) -> WorkspaceCounts:
        def count(name: str) -> int:
            folder = self.root / name
            return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0

        return WorkspaceCounts(datasets=count("datasets"), runs=count("runs"), models=count("models"))

    def resolve(self, raw: object, *, field: str = "path", allow_import_roots: bool = True) -> Path:
        """Resolve a client-given path, or raise PathRefused naming `field`.

        Relative paths are taken from the workspace root. Absolute paths are allowed
        only inside an import root (when `allow_import_roots`). `..` segments, URL
        escapes, backslashes, `~`, control characters and symlinks that leave the
        allowed roots are all refused.
        """
        text = _check_syntax(raw, field)
        candidate = PurePosixPath(text)
        if candidate.is_absolute():
            if not allow_import_roots or not self.import_roots:
                raise PathRefused(
                    f"argument '{field}': absolute paths are not accepted here; "
                    "give a path relative to the workspace"
                )
            resolved = Path(text).resolve()
            if not any(resolved.is_relative_to(root) for root in self.import_roots):
                raise PathRefused(
                    f"argument '{field}': the path is outside the workspace and every import root; "
                    "copy the file into an import root or the workspace, or ask the operator to add its folder "
                    "to import_roots"
                )
            return resolved
        resolved = (self.root / text).resolve()
        if not resolved.is_relative_to(self.root):
            raise PathRefused(
                f"argument '{field}': the path leaves the workspace through a symbolic link; "
                "give a path to a real file inside the workspace"
            )
        return resolved

    def shown(self, path: Path) -> str:
        """How a resolved path is stored and shown: relative inside the workspace, as given
        inside an import root (the operator allowlisted those)."""
        return self.relative(path) if path.is_relative_to(self.root) else str(path)

    def relative(self, path: Path) -> str:
        """How a workspace path is shown to clients: relative, never the host's absolute path."""
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.name


def _check_syntax(raw: object, field: str) -> str:
    if not isinstance(raw, str):
        raise PathRefused(f"argument '{field}': expected a path as a string")
    if not raw.strip():
        raise PathRefused(f"argument '{field}': the path is empty; give a file or folder name")
    if len(raw) > MAX_PATH_CHARS:
        raise PathRefused(f"argument '{field}': the path is longer than {MAX_PATH_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in raw):
        raise PathRefused(f"argument '{field}': the path contains control characters (such as NUL); remove them")
    if "\\" in raw:
        raise PathRefused(f"argument '{field}': use forward slashes '/' as separators, not backslashes")
    if _PERCENT_ESCAPE.search(raw):
        raise PathRefused(f"argument '{field}': the path looks URL-encoded (%XX); give the plain path")
    if raw.startswith("~"):
        raise PathRefused(f"argument '{field}': '~' is not expanded; give a path relative to the workspace")
    # NFKC folds look-alikes such as fullwidth dots into '.', so they cannot smuggle a '..'.
    for text in (raw, unicodedata.normalize("NFKC", raw)):
        if any(part == ".." for part in text.split("/")):
            raise PathRefused(
                f"argument '{field}': '..' segments are not allowed; give a path inside the workspace"
            )
    return raw
