"""The workspace folder and the one place where paths given by agents are resolved.

A path from a client is untrusted. It is accepted only when it lands inside the
workspace or inside an import root the operator allowlisted, after symlinks are
followed. Refusals never echo host paths back: they name the argument and the fix.
"""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forge_mcp.errors import InvalidArguments, PathRefused
from forge_mcp.jobs.run_dir import RUNS, RunDir
from forge_mcp.security.confinement import check_tree, copy_tree

DATABASE_NAME = "forge.db"
SUBDIRS = ("datasets", RUNS, "models")
MAX_PATH_CHARS = 1024
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
# An absolute path inside an error message: up to the next quote, space or bracket.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:-])/[^\s'\"`<>|:;,()\[\]{}]*")
IMPORT_ROOTS_ENV = "FORGE_IMPORT_ROOTS"  # the setting's name, named in refusals (workers get the roots in job.json)


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

    @property
    def runs(self) -> Path:
        """The folder of run folders (one per job)."""
        return self.root / RUNS

    def run(self, job_id: str) -> RunDir:
        """Every path of one job's run (jobs/run_dir.py)."""
        return RunDir(self.runs, job_id)

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        for name in SUBDIRS:
            (self.root / name).mkdir(exist_ok=True)

    def counts(self) -> WorkspaceCounts:
        def count(name: str) -> int:
            folder = self.root / name
            return sum(1 for _ in folder.iterdir()) if folder.is_dir() else 0

        return WorkspaceCounts(datasets=count("datasets"), runs=count(RUNS), models=count("models"))

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Where client-given paths may lead: the workspace, then each import root."""
        return (self.root, *self.import_roots)

    def resolve(self, raw: object, *, field: str = "path", allow_import_roots: bool = True) -> Path:
        """Resolve a client-given path, or raise PathRefused naming `field`.

        Relative paths are taken from the workspace root. Absolute paths are allowed when
        they resolve inside the workspace, or inside an import root (when
        `allow_import_roots`). `..` segments, URL escapes, backslashes, `~`, control
        characters and symlinks that leave the allowed roots are all refused.
        """
        text = _check_syntax(raw, field)
        roots = self.allowed_roots if allow_import_roots else (self.root,)
        if PurePosixPath(text).is_absolute():
            given = Path(text)
            resolved = given.resolve()
            if any(resolved.is_relative_to(root) for root in roots):
                return resolved
            if any(given.is_relative_to(root) for root in roots):
                raise PathRefused(
                    f"argument '{field}': the path leaves the workspace and every import root through a symbolic "
                    "link; give a path to the real file inside them"
                )
            if not allow_import_roots:
                raise PathRefused(f"argument '{field}': the path is outside the workspace, and import roots do not "
                                  "apply here; give a path inside the workspace")
            where = "the workspace and every import root" if self.import_roots else "the workspace"
            raise PathRefused(
                f"argument '{field}': the path is outside {where}"
                + "; give a path relative to the workspace, copy the file into it, or have the operator add its "
                f"folder to the import roots: the {IMPORT_ROOTS_ENV} setting (folders separated by '{os.pathsep}'), "
                "which `forge-mcp client-config --import-root DIR` writes into a client's config"
            )
        resolved = (self.root / text).resolve()
        if not resolved.is_relative_to(self.root):
            raise PathRefused(
                f"argument '{field}': the path leaves the workspace through a symbolic link; "
                "give a path to a real file inside the workspace"
            )
        return resolved

    def resolve_tree(self, raw: object, *, field: str) -> Path:
        """Resolve a file or folder a reader will open, such as a model or tokenizer folder, and
        check every entry inside it (config.json, weights, ...) the same way; it must exist."""
        path = self.resolve(raw, field=field)
        if not path.exists():
            raise InvalidArguments(
                f"argument '{field}': nothing exists at {raw}; give a file or folder relative to the workspace "
                "(or inside an import root)"
            )
        self.check_tree(path, field=field)
        return path

    def check_tree(self, path: Path, *, field: str) -> None:
        """Refuse `path` when any entry inside it leads outside the allowed roots (see confinement.py)."""
        check_tree(path, self.allowed_roots, field)

    def copy_tree(self, source: Path, target: Path, *, field: str) -> None:
        """Copy a checked folder into a new workspace folder without following links out."""
        self.writable(target)
        copy_tree(source, target, self.allowed_roots, field)

    def writable(self, path: Path) -> Path:
        """`path` (a folder or file under the workspace the server is about to write) when no
        link on its way leads out of the workspace; datasets/<name>, models/<name> or runs/<job>
        planted as a link to elsewhere would otherwise receive the writes."""
        shown = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else path.name
        if not path.resolve().is_relative_to(self.root):
            raise PathRefused(
                f"the workspace folder {shown} leads outside the workspace through a symbolic link, and forge-mcp "
                "writes only inside the workspace; remove the link, then try again"
            )
        return path

    def scrub(self, text: str) -> str:
        """A message for clients: workspace paths made relative, other host paths cut to their
        last part; import roots stay (the operator allowlisted them, and callers name them)."""

        def shorten(match: re.Match[str]) -> str:
            found = match.group(0)
            path = Path(found)
            if path == self.root:
                return "."
            if path.is_relative_to(self.root):
                return path.relative_to(self.root).as_posix()
            if any(path.is_relative_to(root) for root in self.import_roots):
                return found
            return f".../{path.name}" if path.name else "..."

        return _ABSOLUTE_PATH.sub(shorten, text)

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
