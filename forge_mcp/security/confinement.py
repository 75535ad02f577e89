"""Folder trees a client names, walked and copied without leaving the allowed roots.

Resolving the top of a folder is not enough: any entry inside it can be a symbolic link
to somewhere else on the host, and a reader (transformers, a dataset reader, a copy)
follows it. So every entry is checked after resolution, links into the allowed roots are
followed (and their contents checked in turn), and anything that leads out is refused by
name, relative to the folder the client gave. Copies never write through a link.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from forge_mcp.errors import PathRefused

COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class TreeEntry:
    relative: PurePosixPath  # as the client sees it: relative to the folder they named
    real: Path  # fully resolved, inside the allowed roots
    is_dir: bool


def inside(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def walk(top: Path, roots: tuple[Path, ...], field: str) -> Iterator[TreeEntry]:
    """Every entry under `top` (the top itself excluded), each resolved and checked against
    `roots`; raises PathRefused naming `field` and the first entry that leads out. Links to
    folders inside the roots are walked into; a folder reached twice (a loop) is walked once."""
    start = top.resolve()
    if not inside(start, roots):
        raise PathRefused(f"argument '{field}': the path leads outside the workspace and every import root")
    if start.exists() and not (start.is_dir() or start.is_file()):
        raise PathRefused(f"argument '{field}': the path is not a regular file or folder (a FIFO or device); "
                          "give a file or folder")
    seen = {start}
    stack = [(start, PurePosixPath())]
    while stack:
        folder, shown = stack.pop()
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            names = sorted((entry.name, entry.is_symlink()) for entry in entries)
        for name, is_link in names:
            relative = shown / name
            real = (folder / name).resolve() if is_link else folder / name
            if is_link and not inside(real, roots):
                raise PathRefused(
                    f"argument '{field}': '{relative}' inside it is a symbolic link to a place outside the workspace "
                    "and every import root; replace the link with the file itself, or move its target into the "
                    "workspace"
                )
            try:
                mode = real.stat().st_mode
            except OSError:  # a dangling link inside the roots: the reader reports the missing file
                continue
            if stat.S_ISDIR(mode):
                yield TreeEntry(relative, real, True)
                if real not in seen:
                    seen.add(real)
                    stack.append((real, relative))
            elif stat.S_ISREG(mode):
                yield TreeEntry(relative, real, False)
            else:  # a FIFO or device would block or stream forever when read
                raise PathRefused(f"argument '{field}': '{relative}' inside it is not a regular file or folder; "
                                  "remove it")


def check_tree(top: Path, roots: tuple[Path, ...], field: str) -> None:
    for _ in walk(top, roots, field):
        pass


def copy_tree(source: Path, target: Path, roots: tuple[Path, ...], field: str) -> None:
    """Copy the folder `source` into `target`, which must not exist yet: links inside the
    roots become plain copies of what they point to, links out are refused, and every file is
    created anew (O_EXCL, O_NOFOLLOW) so nothing is ever written through a link."""
    entries = list(walk(source, roots, field))  # checked in full before the first byte is written
    target.mkdir()
    for entry in entries:
        destination = target.joinpath(*entry.relative.parts)
        if entry.is_dir:
            destination.mkdir(exist_ok=True)
        else:
            copy_file(entry.real, destination)


def copy_file(source: Path, destination: Path) -> None:
    """Copy one resolved regular file; refuses to read a link (swapped in since the check) or
    to write through one."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    reading = os.open(source, flags)
    try:
        writing = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        with os.fdopen(reading, "rb", closefd=False) as src, os.fdopen(writing, "wb") as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK)
    finally:
        os.close(reading)
