"""Importing: versions, fingerprints, recognising identical content, column maps, and
refusals that leave nothing half-written behind."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.errors import InvalidArguments, NotFound, PathRefused
from forge_mcp.settings import load_settings

ROWS = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(20)]


@pytest.fixture
async def app(tmp_path: Path):  # noqa: ANN201
    forge = ForgeApp(load_settings(home=tmp_path / "ws", import_roots=[str(tmp_path / "imports")]))
    (tmp_path / "imports").mkdir()
    await forge.start(engine=False)
    yield forge
    await forge.stop()


def write_jsonl(path: Path, rows: list, extra_lines: list[str] = ()) -> Path:  # noqa: B006
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(line + "\n" for line in extra_lines))
    return path


async def test_import_stores_a_fingerprinted_version(app: ForgeApp) -> None:
    write_jsonl(app.workspace.root / "qa.jsonl", ROWS)
    result = await app.datasets.import_("qa.jsonl", "qa")
    info = result.dataset
    assert (info.id, info.version, info.rows, info.kind) == ("qa@v1", 1, 20, "alpaca")
    assert result.detection.confidence == 1.0 and not result.deduplicated
    assert {c.name for c in info.columns} == {"instruction", "output"}
    folder = app.workspace.root / info.path
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fingerprint"] == info.fingerprint and manifest["rows"] == 20
    stored = pq.read_table(folder / "data.parquet").to_pylist()
    assert [json.loads(r["row"]) for r in stored] == ROWS
    assert stored[3]["line"] == "4"
    assert await app.datasets.repo.get("qa") == await app.datasets.repo.get("qa@v1")


async def test_identical_content_is_recognised_and_changed_content_is_a_new_version(app: ForgeApp) -> None:
    write_jsonl(app.workspace.root / "a.jsonl", ROWS)
    first = await app.datasets.import_("a.jsonl", "qa")
    # Same rows, different formatting and key order: same canonical content.
    (app.workspace.root / "b.jsonl").write_text("".join(json.dumps(dict(reversed(r.items())), indent=None) + "\n" for r in ROWS))
    again = await app.datasets.import_("b.jsonl", "qa")
    assert again.deduplicated and again.dataset.id == first.dataset.id
    write_jsonl(app.workspace.root / "c.jsonl", ROWS[:-1])
    second = await app.datasets.import_("c.jsonl", "qa")
    assert second.dataset.id == "qa@v2" and second.dataset.fingerprint != first.dataset.fingerprint
    assert [d.id for d in await app.datasets.repo.list("qa")] == ["qa@v2", "qa@v1"]


async def test_column_map_and_kind_override(app: ForgeApp) -> None:
    write_jsonl(app.workspace.root / "faq.jsonl", [{"question": "q", "answer": "a"}] * 3)
    with pytest.raises(InvalidArguments, match="no known layout fits these rows \\(fields seen: question, answer\\)"):
        await app.datasets.import_("faq.jsonl", "faq")
    mapped = await app.datasets.import_("faq.jsonl", "faq", column_map={"question": "prompt", "answer": "completion"})
    assert mapped.dataset.kind == "completion"
    forced = await app.datasets.import_("faq.jsonl", "faq-text", kind=DatasetKind.TEXT, column_map={"answer": "text"})
    assert forced.dataset.kind == "text" and forced.detection.confidence == 1.0


async def test_too_many_bad_lines_refuses_and_leaves_nothing(app: ForgeApp) -> None:
    write_jsonl(app.workspace.root / "messy.jsonl", ROWS[:3], ["{bad"] * 2)
    with pytest.raises(InvalidArguments) as refused:
        await app.datasets.import_("messy.jsonl", "messy")
    assert "2 of 5 lines could not be read" in refused.value.message and "line 4: not valid JSON" in refused.value.message
    assert not any((app.workspace.root / "datasets").glob("messy*"))
    assert list((app.workspace.root / "datasets" / ".staging").iterdir()) == []
    with pytest.raises(NotFound):
        await app.datasets.repo.get("messy")
    accepted = await app.datasets.import_("messy.jsonl", "messy", max_bad_fraction=0.5)
    assert accepted.bad_lines == 2 and accepted.dataset.rows == 3
    assert accepted.bad_line_examples[0].line == "4"


@pytest.mark.parametrize("path", ["../outside.jsonl", "/etc/passwd", "%2e%2e/x.jsonl", "datasets/../../x"])
async def test_paths_outside_the_workspace_are_refused(app: ForgeApp, path: str) -> None:
    with pytest.raises(PathRefused, match="argument 'path'"):
        await app.datasets.import_(path, "x")


async def test_absolute_paths_inside_an_import_root_are_accepted(app: ForgeApp, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "imports" / "qa.jsonl", ROWS)
    result = await app.datasets.import_(str(source), "qa")
    assert result.dataset.source["path"] == str(source)


async def test_bad_names_and_missing_sources(app: ForgeApp) -> None:
    with pytest.raises(InvalidArguments, match="name: use 1-64 lowercase"):
        await app.datasets.import_("x.jsonl", "Bad Name")
    with pytest.raises(InvalidArguments, match="path: nothing exists there"):
        await app.datasets.import_("missing.jsonl", "x")


async def test_staging_leftovers_are_removed_at_start(tmp_path: Path) -> None:
    leftover = tmp_path / "ws" / "datasets" / ".staging" / "dead"
    leftover.mkdir(parents=True)
    (leftover / "data.parquet").write_bytes(b"half")
    forge = ForgeApp(load_settings(home=tmp_path / "ws"))
    await forge.start(engine=False)
    try:
        assert not leftover.exists()
        assert await forge.datasets.repo.list() == []
    finally:
        await forge.stop()


async def test_a_live_process_staging_is_left_alone(tmp_path: Path) -> None:
    import os

    mine = tmp_path / "ws" / "datasets" / ".staging" / f"{os.getppid()}-busy"
    mine.mkdir(parents=True)
    forge = ForgeApp(load_settings(home=tmp_path / "ws"))
    await forge.start(engine=False)
    try:
        assert mine.exists()  # its owner (this test's parent process) is alive
    finally:
        await forge.stop()
