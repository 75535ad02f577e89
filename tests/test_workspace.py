"""The path resolver: every path an agent gives stays inside the workspace or an
allowlisted import root, and refusals never show host paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from forge_mcp.errors import ForgeError, PathRefused
from forge_mcp.workspace import Workspace

TRAVERSAL_PAYLOADS = [
    "..",
    "../",
    "../secret.txt",
    "../../etc/passwd",
    "datasets/../../etc/passwd",
    "datasets/../..",
    "./../x",
    "a/b/../../../x",
    "/etc/passwd",
    "/",
    "//etc/passwd",
    "/tmp",
    "%2e%2e/etc/passwd",
    "%2e%2e%2fetc%2fpasswd",
    "..%2fetc%2fpasswd",
    "%252e%252e%252f",
    "..%c0%af..%c0%afetc",
    "..\\..\\windows\\win.ini",
    "datasets\\..\\..\\x",
    "~/.ssh/id_rsa",
    "~root/.bashrc",
    "data\x00.jsonl",
    "../etc/passwd\x00.jsonl",
    "\x00",
    "data\n../x",
    "\uff0e\uff0e/etc/passwd",  # fullwidth dots fold to '..' under NFKC
    "\u2024\u2024/etc",  # one-dot leaders fold to '..'
    "x/" * 600,
    "",
    "   ",
    "link-out/passwd",  # symlink inside the workspace pointing outside
    "link-out",
    "link-dir-escape/../x",
]


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    ws = Workspace(tmp_path / "ws")
    ws.create()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text("root:x")
    os.symlink(outside, ws.root / "link-out")
    return ws


def test_there_are_at_least_thirty_payloads() -> None:
    assert len(TRAVERSAL_PAYLOADS) >= 30


@pytest.mark.parametrize("payload", TRAVERSAL_PAYLOADS)
def test_traversal_payload_is_refused(workspace: Workspace, payload: str) -> None:
    with pytest.raises(PathRefused) as refused:
        workspace.resolve(payload, field="source")
    message = refused.value.message
    assert message.startswith("argument 'source'")
    assert str(workspace.root) not in message
    assert "/etc" not in message


@pytest.mark.parametrize("payload", [None, 3, ["a"], {"p": "x"}, b"bytes"])
def test_non_string_paths_are_refused(workspace: Workspace, payload: object) -> None:
    with pytest.raises(PathRefused, match="expected a path as a string"):
        workspace.resolve(payload)


def test_relative_path_resolves_inside_workspace(workspace: Workspace) -> None:
    path = workspace.resolve("datasets/train.jsonl")
    assert path == workspace.root / "datasets" / "train.jsonl"


def test_symlink_that_stays_inside_is_allowed(workspace: Workspace) -> None:
    (workspace.root / "datasets" / "real.jsonl").write_text("{}")
    os.symlink(workspace.root / "datasets" / "real.jsonl", workspace.root / "alias.jsonl")
    assert workspace.resolve("alias.jsonl") == workspace.root / "datasets" / "real.jsonl"


def test_absolute_path_inside_an_import_root_is_allowed(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    (root / "data.jsonl").write_text("{}")
    ws = Workspace(tmp_path / "ws", import_roots=[root])
    assert ws.resolve(str(root / "data.jsonl")) == root / "data.jsonl"


def test_absolute_path_outside_import_roots_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    ws = Workspace(tmp_path / "ws", import_roots=[root])
    with pytest.raises(PathRefused, match="outside the workspace and every import root"):
        ws.resolve(str(tmp_path / "elsewhere.jsonl"))


def test_symlink_out_of_an_import_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, root / "innocent.jsonl")
    ws = Workspace(tmp_path / "ws", import_roots=[root])
    with pytest.raises(PathRefused):
        ws.resolve(str(root / "innocent.jsonl"))


def test_import_roots_can_be_turned_off_per_call(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    ws = Workspace(tmp_path / "ws", import_roots=[root])
    with pytest.raises(PathRefused, match="import roots do not apply here"):
        ws.resolve(str(root / "x"), allow_import_roots=False)


def test_relative_display_never_shows_the_host_path(workspace: Workspace) -> None:
    assert workspace.relative(workspace.root / "runs" / "abc") == "runs/abc"


def test_counts_reflect_workspace_folders(workspace: Workspace) -> None:
    (workspace.root / "datasets" / "d1").mkdir()
    (workspace.root / "runs" / "r1").mkdir()
    (workspace.root / "runs" / "r2").mkdir()
    counts = workspace.counts()
    assert (counts.datasets, counts.runs, counts.models) == (1, 2, 0)


def test_absolute_path_inside_the_workspace_is_accepted(workspace: Workspace) -> None:
    (workspace.root / "datasets" / "train.jsonl").write_text("{}")
    assert workspace.resolve(str(workspace.root / "datasets" / "train.jsonl")) == workspace.root / "datasets" / "train.jsonl"


def test_absolute_path_outside_names_the_way_out_without_echoing_it(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(PathRefused) as refused:
        workspace.resolve(str(tmp_path / "outside" / "passwd"), field="spec.base_model")
    message = refused.value.message
    assert message.startswith("argument 'spec.base_model': the path is outside the workspace;")
    assert "FORGE_IMPORT_ROOTS" in message and "client-config --import-root DIR" in message
    assert str(tmp_path) not in message


def test_absolute_path_through_a_link_out_is_refused(workspace: Workspace) -> None:
    with pytest.raises(PathRefused, match="through a symbolic link"):
        workspace.resolve(str(workspace.root / "link-out" / "passwd"))


def test_resolve_tree_refuses_a_missing_path_naming_the_argument(workspace: Workspace) -> None:
    with pytest.raises(ForgeError, match="argument 'tokenizer_path': nothing exists at no-such-tokenizer"):
        workspace.resolve_tree("no-such-tokenizer", field="tokenizer_path")


def test_writable_refuses_a_workspace_folder_that_links_out(workspace: Workspace, tmp_path: Path) -> None:
    os.symlink(tmp_path / "outside", workspace.root / "datasets" / "evil")
    with pytest.raises(PathRefused) as refused:
        workspace.writable(workspace.root / "datasets" / "evil" / "v1")
    assert "datasets/evil/v1 leads outside the workspace" in refused.value.message
    assert str(tmp_path) not in refused.value.message
    assert workspace.writable(workspace.root / "datasets" / "fine" / "v1") == workspace.root / "datasets" / "fine" / "v1"


def test_scrub_makes_workspace_paths_relative_and_cuts_other_host_paths(tmp_path: Path) -> None:
    root = tmp_path / "imports"
    root.mkdir()
    ws = Workspace(tmp_path / "ws", import_roots=[root])
    text = (f"Can't load tokenizer for '{ws.root}/no-such-tokenizer'. In {ws.root}: see /usr/lib/python3/site.py "
            f"and {root}/data.jsonl, or http://127.0.0.1:8000/v1")
    assert ws.scrub(text) == ("Can't load tokenizer for 'no-such-tokenizer'. In .: see .../site.py "
                              f"and {root}/data.jsonl, or http://127.0.0.1:8000/v1")
