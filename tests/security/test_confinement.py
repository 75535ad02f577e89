"""Folder trees a client names: every entry checked after resolution, copies that never
follow a link out or write through one. Real files and real symbolic links."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forge_mcp.errors import PathRefused
from forge_mcp.security.confinement import check_tree, copy_file, copy_tree


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, tuple[Path, ...]]:
    """(workspace root, outside folder, allowed roots) with a model folder at root/model."""
    root, outside = tmp_path / "ws", tmp_path / "outside"
    (root / "model" / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "model" / "config.json").write_text("{}")
    (root / "model" / "sub" / "weights.bin").write_bytes(b"w" * 10)
    (outside / "secret.txt").write_text("secret")
    return root, outside, (root.resolve(),)


def test_a_clean_tree_passes(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, _, roots = layout
    check_tree(root / "model", roots, "base_model")


@pytest.mark.parametrize("where", ["config.json", "sub/tokenizer.json", "linked-dir"])
def test_a_link_out_anywhere_in_the_tree_is_refused_by_its_relative_name(
    layout: tuple[Path, Path, tuple[Path, ...]], where: str
) -> None:
    root, outside, roots = layout
    entry = root / "model" / where
    entry.unlink(missing_ok=True)
    os.symlink(outside if where == "linked-dir" else outside / "secret.txt", entry)
    with pytest.raises(PathRefused) as refused:
        check_tree(root / "model", roots, "base_model")
    assert refused.value.message.startswith(f"argument 'base_model': '{where}' inside it is a symbolic link")
    assert str(outside) not in refused.value.message


def test_a_link_inside_the_roots_is_followed_and_its_contents_checked(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, outside, roots = layout
    (root / "shared").mkdir()
    os.symlink(outside / "secret.txt", root / "shared" / "leak.txt")
    os.symlink(root / "shared", root / "model" / "shared")
    with pytest.raises(PathRefused, match="'shared/leak.txt' inside it is a symbolic link"):
        check_tree(root / "model", roots, "path")


def test_a_link_loop_is_walked_once(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, _, roots = layout
    os.symlink(root / "model", root / "model" / "sub" / "loop")
    check_tree(root / "model", roots, "path")


def test_a_fifo_is_refused(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, _, roots = layout
    os.mkfifo(root / "model" / "pipe.txt")
    with pytest.raises(PathRefused, match="'pipe.txt' inside it is not a regular file"):
        check_tree(root / "model", roots, "path")


def test_copy_tree_copies_links_inside_as_files(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, _, roots = layout
    (root / "elsewhere.json").write_text('{"a": 1}')
    os.symlink(root / "elsewhere.json", root / "model" / "tokenizer.json")
    copy_tree(root / "model", root / "copy", roots, "path")
    copied = root / "copy" / "tokenizer.json"
    assert not copied.is_symlink() and copied.read_text() == '{"a": 1}'
    assert (root / "copy" / "sub" / "weights.bin").read_bytes() == b"w" * 10


def test_copy_tree_refuses_a_link_out_before_writing_anything(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, outside, roots = layout
    os.symlink(outside / "secret.txt", root / "model" / "leak.txt")
    with pytest.raises(PathRefused, match="'leak.txt' inside it"):
        copy_tree(root / "model", root / "copy", roots, "path")
    assert not (root / "copy").exists()


def test_copy_file_never_writes_through_a_link(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, outside, _ = layout
    os.symlink(outside / "secret.txt", root / "planted")
    with pytest.raises(FileExistsError):
        copy_file(root / "model" / "config.json", root / "planted")
    assert (outside / "secret.txt").read_text() == "secret"


def test_a_fifo_given_as_the_path_itself_is_refused(layout: tuple[Path, Path, tuple[Path, ...]]) -> None:
    root, _, roots = layout
    os.mkfifo(root / "pipe.jsonl")
    with pytest.raises(PathRefused, match="argument 'path': the path is not a regular file or folder"):
        check_tree(root / "pipe.jsonl", roots, "path")
