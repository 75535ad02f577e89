"""The registry on a real workspace database: versions with model cards, stage rules,
gates that refuse without moving anything, and never two production versions of a name —
not even when two processes promote at once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import Conflict, InvalidArguments
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.models.repository import ModelRepository
from forge_mcp.security.principal import Principal
from forge_mcp.store import Store

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))


def adapter_folder(home: Path, name: str = "adapter") -> str:
    folder = home / "incoming" / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "models/tiny", "r": 8}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return f"incoming/{name}"


async def test_versions_get_their_own_folder_and_a_model_card(app: ForgeApp) -> None:
    home = app.settings.home
    first = await app.models.register(ALICE, "greeter", path=adapter_folder(home, "a"))
    second = await app.models.register(ALICE, "greeter", path=adapter_folder(home, "b"))
    assert (first.id, second.id, first.stage, first.kind, first.base_model) == (
        "greeter@v1", "greeter@v2", "registered", "adapter", "models/tiny")  # fmt: skip
    card = (home / second.path / "README.md").read_text()
    assert card.startswith("# greeter@v2") and "models/tiny" in card
    assert (home / second.path / "adapter_model.safetensors").is_file()
    assert not list((home / "models" / ".staging").iterdir())


async def test_stage_rules_and_a_refusing_gate_move_nothing(app: ForgeApp) -> None:
    model = await app.models.register(ALICE, "greeter", path=adapter_folder(app.settings.home))
    with pytest.raises(Conflict, match="gate: greeter@v1 stays registered — final_eval_loss: this version has no such metric"):
        await app.models.promote(ALICE, "greeter@v1", "staging", {"final_eval_loss": "< 3"})
    assert (await app.models.repo.get(model.id)).stage == "registered"
    await app.models.promote(ALICE, "greeter@v1", "archived", None)
    with pytest.raises(Conflict, match="archived; from there it can go to nowhere: archived is final"):
        await app.models.promote(ALICE, "greeter@v1", "staging", None)


async def test_promoting_to_production_archives_the_previous_one(app: ForgeApp) -> None:
    home = app.settings.home
    for name in ("a", "b"):
        await app.models.register(ALICE, "greeter", path=adapter_folder(home, name))
    await app.models.promote(ALICE, "greeter@v1", "production", None)
    await app.models.promote(BOB, "greeter@v2", "production", None)
    stages = {m.id: m.stage for m in await app.models.repo.list("greeter")}
    assert stages == {"greeter@v1": "archived", "greeter@v2": "production"}
    history = await app.models.repo.history("greeter@v1")
    assert [(h["from_stage"], h["to_stage"]) for h in history] == [(None, "registered"), ("registered", "production"),
                                                                   ("production", "archived")]  # fmt: skip


async def test_two_processes_promoting_at_once_leave_one_production(app: ForgeApp) -> None:
    home = app.settings.home
    for name in ("a", "b", "c"):
        await app.models.register(ALICE, "greeter", path=adapter_folder(home, name))
    # A second connection to the same database plays a second server process.
    other = Store(home / "forge.db")
    await other.open()
    try:
        rival = ModelRegistry(app.workspace, ModelRepository(other), app.jobs)
        outcomes = await asyncio.gather(
            app.models.promote(ALICE, "greeter@v2", "production", None),
            rival.promote(BOB, "greeter@v3", "production", None),
            return_exceptions=True,
        )
    finally:
        await other.close()
    assert not [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, Conflict)], outcomes
    assert [m.id for m in await app.models.repo.list("greeter", "production")] in (["greeter@v2"], ["greeter@v3"])
    with sqlite3.connect(home / "forge.db") as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE models SET stage = 'production' WHERE name = 'greeter'")  # the index itself refuses


async def test_registration_refuses_what_is_not_a_model(app: ForgeApp) -> None:
    (app.settings.home / "empty").mkdir()
    with pytest.raises(InvalidArguments, match="path: give a PEFT adapter folder"):
        await app.models.register(ALICE, "greeter", path="empty")
    with pytest.raises(InvalidArguments, match="job_id or path: give exactly one"):
        await app.models.register(ALICE, "greeter")
    with pytest.raises(InvalidArguments, match="name: use 1-64 lowercase"):
        await app.models.register(ALICE, "Greeter!", path="empty")
