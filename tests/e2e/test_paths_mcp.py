"""Client-given paths through a live server and the official MCP client: absolute paths
inside the workspace work, paths outside name the way out (FORGE_IMPORT_ROOTS), links out
of a model, tokenizer or dataset folder are refused by every tool that would read them,
workspace folders that link out receive no writes, and a failed job tells the caller what
went wrong without host paths. Real files, real symbolic links."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Live:
    url: str
    home: Path
    outside: Path


def chats(path: Path, rows: int = 40) -> None:
    with path.open("w") as f:
        for i in range(rows):
            chat = [{"role": "user", "content": f"What is {i} plus one?"}, {"role": "assistant", "content": f"{i + 1}."}]
            f.write(json.dumps({"messages": chat}) + "\n")


def model_folder(path: Path) -> None:
    """A Hugging Face folder as far as the path checks and train_plan read it (config.json, a
    safetensors header, tokenizer files); nothing here loads weights, so no model is built."""
    path.mkdir(parents=True)
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": 256,
              "max_position_embeddings": 512}  # fmt: skip
    (path / "config.json").write_text(json.dumps(config))
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    (path / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(64))
    (path / "tokenizer.json").write_text("{}")
    (path / "tokenizer_config.json").write_text("{}")


def snapshot(folder: Path) -> dict[str, bytes]:
    """Everything under `folder`, to show that nothing was written there."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else b"<dir>" for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    base = tmp_path_factory.mktemp("paths")
    home, outside = base / "forge-workspace", base / "outside"
    (outside / "stolen-datasets").mkdir(parents=True)
    (outside / "stolen-models").mkdir()
    (outside / "secret.txt").write_text("the outside secret")
    (outside / "config.json").write_text('{"model_type": "llama", "hidden_size": 8}')
    (outside / "tokenizer.json").write_text("{}")
    home.mkdir()
    chats(home / "chats.jsonl")
    (home / "texts").mkdir()
    (home / "texts" / "a.txt").write_text("a text inside the workspace")
    os.symlink(outside / "secret.txt", home / "texts" / "leak.txt")
    model_folder(home / "models" / "tiny")
    model_folder(home / "bad-model")
    (home / "bad-model" / "config.json").unlink()
    os.symlink(outside / "config.json", home / "bad-model" / "config.json")
    model_folder(home / "bad-tok")
    (home / "bad-tok" / "tokenizer.json").unlink()
    os.symlink(outside / "tokenizer.json", home / "bad-tok" / "tokenizer.json")
    (home / "empty-tok").mkdir()
    with ServerProcess(home) as server:
        yield Live(server.url, home, outside)


async def prepared_chats(client: Client, name: str, path: str) -> None:
    imported = await client.call_tool("dataset_import", {"path": path, "name": name})
    assert not imported.is_error, imported.content
    started = await client.call_tool("dataset_prepare", {"dataset": name, "dedup": "exact", "pii": "report"})
    waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 120})
    assert waited.structured_content["job"]["state"] == "SUCCEEDED", waited.structured_content["job"]["error"]


def refusal(result: object) -> str:
    assert result.is_error, result.structured_content  # type: ignore[attr-defined]
    return result.content[0].text  # type: ignore[attr-defined]


async def test_absolute_paths_inside_the_workspace_are_accepted(live: Live) -> None:
    async with Client(f"{live.url}/mcp/") as client:
        await prepared_chats(client, "sums-abs", str(live.home / "chats.jsonl"))
        listed = await client.call_tool("dataset_list", {"name": "sums-abs"})
        plan = await client.call_tool("train_plan", {"recipe": "sft-lora-tiny", "spec": {
            "base_model": str(live.home / "models" / "tiny"), "dataset": "sums-abs"}})  # fmt: skip
    assert not plan.is_error, plan.content
    assert plan.structured_content["spec"]["base_model"] == "models/tiny"  # stored as clients see it
    assert plan.structured_content["base"]["path"] == "models/tiny"
    source = listed.structured_content["datasets"][-1]["source"]
    assert source["path"] == "chats.jsonl"


async def test_absolute_paths_outside_name_the_import_roots_setting(live: Live) -> None:
    async with Client(f"{live.url}/mcp/") as client:
        imported = await client.call_tool("dataset_import", {"path": str(live.outside / "secret.txt"), "name": "x"})
        plan = await client.call_tool("train_plan", {"spec": {"base_model": str(live.outside), "dataset": "sums"}})
    for text, field in ((refusal(imported), "path"), (refusal(plan), "spec.base_model")):
        assert f"argument '{field}': the path is outside the workspace" in text
        assert "FORGE_IMPORT_ROOTS" in text and "forge-mcp client-config --import-root DIR" in text
        assert str(live.outside) not in text and str(live.home) not in text


async def test_an_import_root_makes_an_outside_folder_readable(tmp_path: Path) -> None:
    home, root = tmp_path / "ws", tmp_path / "shared-data"
    root.mkdir()
    chats(root / "chats.jsonl", rows=12)
    with ServerProcess(home, env={"FORGE_IMPORT_ROOTS": str(root)}) as server:
        async with Client(f"{server.url}/mcp/") as client:
            imported = await client.call_tool("dataset_import", {"path": str(root / "chats.jsonl"), "name": "shared"})
            elsewhere = await client.call_tool("dataset_import", {"path": str(tmp_path), "name": "x"})
    assert not imported.is_error, imported.content
    assert imported.structured_content["dataset"]["rows"] == 12
    assert "outside the workspace and every import root" in refusal(elsewhere)


async def test_links_out_of_client_folders_are_refused_by_every_reader(live: Live) -> None:
    before = snapshot(live.outside)
    async with Client(f"{live.url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "sums"})
        registered = await client.call_tool("model_register", {"name": "clean", "path": "models/tiny"})
        assert not registered.is_error, registered.content
        calls = {
            "texts": await client.call_tool("dataset_import", {"path": "texts", "name": "texts", "format": "text"}),
            "plan": await client.call_tool("train_plan", {"recipe": "sft-lora-tiny",
                                                          "spec": {"base_model": "bad-model", "dataset": "sums"}}),
            "inspect": await client.call_tool("dataset_inspect", {"dataset": "sums", "tokenizer_path": "bad-tok"}),
            "prepare": await client.call_tool("dataset_prepare", {"dataset": "sums", "tokenizer_path": "bad-tok",
                                                                  "max_length": 64}),
            "evaluate": await client.call_tool("model_evaluate", {"dataset": "sums", "base_model": "bad-model"}),
            "compare": await client.call_tool("model_compare", {"dataset": "sums", "model_a": "clean",
                                                                "base_model": "bad-model"}),
            "register": await client.call_tool("model_register", {"name": "stolen", "path": "bad-model"}),
        }  # fmt: skip
        # A registered version tampered with afterwards is refused before a job reads it.
        os.symlink(live.outside / "secret.txt", live.home / "models" / "clean" / "v1" / "notes.txt")
        exported = await client.call_tool("model_export", {"model": "clean", "format": "merged"})
        served = await client.call_tool("serve_start", {"model": "clean", "engine": "transformers"})
        listed = await client.call_tool("dataset_list", {"name": "texts"})
        models = await client.call_tool("model_list", {"name": "stolen"})
    expected = {
        "texts": ("path", "leak.txt"),
        "plan": ("spec.base_model", "config.json"),
        "inspect": ("tokenizer_path", "tokenizer.json"),
        "prepare": ("tokenizer_path", "tokenizer.json"),
        "evaluate": ("base_model", "config.json"),
        "compare": ("base_model", "config.json"),
        "register": ("path", "config.json"),
    }
    for name, (field, entry) in expected.items():
        text = refusal(calls[name])
        assert f"argument '{field}': '{entry}' inside it is a symbolic link to a place outside" in text, (name, text)
        assert str(live.outside) not in text and str(live.home) not in text
    for result in (exported, served):
        assert "argument 'model': 'notes.txt' inside it is a symbolic link" in refusal(result)
    assert listed.structured_content["datasets"] == [] and models.structured_content["models"] == []
    assert not (live.home / "models" / "stolen").exists()
    assert snapshot(live.outside) == before
    (live.home / "models" / "clean" / "v1" / "notes.txt").unlink()


async def test_a_dataset_folder_whose_rows_link_out_is_refused_by_train_plan_too(live: Live) -> None:
    """train_plan samples the rows for its time estimate on the server: rows swapped for a link
    out are refused there, as by dataset_inspect and every job, not read."""
    async with Client(f"{live.url}/mcp/") as client:
        imported = await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "swapped"})
        assert not imported.is_error, imported.content
        rows, moved = live.home / imported.structured_content["dataset"]["path"] / "data.parquet", live.outside / "rows.parquet"
        shutil.move(rows, moved)
        os.symlink(moved, rows)
        try:
            planned = await client.call_tool("train_plan", {"spec": {"base_model": "models/tiny", "dataset": "swapped"}})
            inspected = await client.call_tool("dataset_inspect", {"dataset": "swapped"})
        finally:
            rows.unlink()
            shutil.move(moved, rows)
        # The same dataset, its rows back inside: planned (the refusal was the link, nothing else).
        restored = await client.call_tool("train_plan", {"spec": {"base_model": "models/tiny", "dataset": "swapped"}})
    for result in (planned, inspected):
        text = refusal(result)
        assert "argument 'dataset': 'data.parquet' inside it is a symbolic link to a place outside" in text, text
        assert str(live.outside) not in text and str(live.home) not in text
    assert not restored.is_error, restored.content


async def test_workspace_folders_that_link_out_receive_no_writes(live: Live) -> None:
    os.symlink(live.outside / "stolen-datasets", live.home / "datasets" / "evil")
    os.symlink(live.outside / "stolen-models", live.home / "models" / "evil")
    before = snapshot(live.outside)
    async with Client(f"{live.url}/mcp/") as client:
        imported = await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "evil"})
        registered = await client.call_tool("model_register", {"name": "evil", "path": "models/tiny"})
    assert "the workspace folder datasets/evil/v1 leads outside the workspace" in refusal(imported)
    assert "the workspace folder models/evil/v1 leads outside the workspace" in refusal(registered)
    assert snapshot(live.outside) == before


async def test_model_register_copies_links_inside_as_plain_files(live: Live) -> None:
    folder = live.home / "aliased"
    shutil.copytree(live.home / "models" / "tiny", folder)
    (folder / "config.json").unlink()
    os.symlink(live.home / "models" / "tiny" / "config.json", folder / "config.json")
    async with Client(f"{live.url}/mcp/") as client:
        registered = await client.call_tool("model_register", {"name": "aliased", "path": "aliased"})
    assert not registered.is_error, registered.content
    copied = live.home / registered.structured_content["path"] / "config.json"
    assert not copied.is_symlink()
    assert copied.read_bytes() == (live.home / "models" / "tiny" / "config.json").read_bytes()


async def test_tokenizer_paths_are_checked_and_stored_relative(live: Live) -> None:
    async with Client(f"{live.url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "sums"})
        missing = await client.call_tool("dataset_prepare", {"dataset": "sums", "tokenizer_path": "no-such-tokenizer",
                                                             "max_length": 64})  # fmt: skip
        # Given absolute, stored relative; the folder holds no tokenizer, so transformers fails in the job.
        started = await client.call_tool("dataset_prepare", {"dataset": "sums", "output_name": "sums-bad", "max_length": 64,
                                                             "tokenizer_path": str(live.home / "empty-tok")})  # fmt: skip
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 120})
    assert "argument 'tokenizer_path': nothing exists at no-such-tokenizer" in refusal(missing)
    job = waited.structured_content["job"]
    assert job["arguments"]["options"]["tokenizer_path"] == "empty-tok"
    assert job["state"] == "FAILED" and job["error"].startswith("the job stopped on an unexpected error (ref ")
    assert str(live.home) not in json.dumps(job)


async def test_a_failed_job_shows_workspace_relative_paths_and_a_ref_into_its_log(live: Live) -> None:
    async with Client(f"{live.url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "vanishing"})
        (live.home / "datasets" / "vanishing" / "v1" / "data.parquet").unlink()  # gone behind the server's back
        started = await client.call_tool("dataset_prepare", {"dataset": "vanishing"})
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 120})
        logs = await client.call_tool("job_logs", {"job_id": started.structured_content["job_id"]})
    job = waited.structured_content["job"]
    assert job["state"] == "FAILED" and job["reason"] == "worker_error"
    error = job["error"]
    assert error.startswith("the job stopped on an unexpected error (ref ") and error.endswith("job_logs shows the traceback")
    assert "datasets/vanishing/v1/data.parquet" in error  # the library's words, with the path made relative
    assert str(live.home) not in error and "FileNotFoundError" not in error and "OSError" not in error, error
    ref = error.split("(ref ", 1)[1].split(")", 1)[0]
    log = logs.structured_content["text"]
    assert f"unexpected error, ref {ref}" in log and "Traceback" in log  # the detail stays in the log


async def test_missing_folders_are_refused_before_any_job_exists(live: Live) -> None:
    async with Client(f"{live.url}/mcp/") as client:
        planned = await client.call_tool("train_plan", {"spec": {"base_model": "models/nope", "dataset": "sums"}})
        started = await client.call_tool("train_start", {"spec": {"base_model": "models/nope", "dataset": "sums"}})
        evaluated = await client.call_tool("model_evaluate", {"dataset": "sums", "base_model": "models/nope"})
        registered = await client.call_tool("model_register", {"name": "nope", "path": "models/nope"})
    for result, field in ((planned, "spec.base_model"), (started, "spec.base_model"), (evaluated, "base_model"),
                          (registered, "path")):  # fmt: skip
        assert f"argument '{field}': nothing exists at models/nope" in refusal(result)


async def test_a_runs_folder_that_links_out_receives_no_job_files(tmp_path: Path) -> None:
    home, outside = tmp_path / "ws", tmp_path / "outside-runs"
    outside.mkdir()
    home.mkdir()
    os.symlink(outside, home / "runs")
    chats(home / "chats.jsonl", rows=12)
    with ServerProcess(home) as server:
        async with Client(f"{server.url}/mcp/") as client:
            await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "sums"})
            started = await client.call_tool("dataset_prepare", {"dataset": "sums"})
            jobs = await client.call_tool("job_list", {})
    assert "the workspace folder runs leads outside the workspace through a symbolic link" in refusal(started)
    assert jobs.structured_content["jobs"] == []
    assert list(outside.iterdir()) == []


async def test_an_adapter_that_records_an_absolute_base_is_registered_with_it_relative(live: Live) -> None:
    """Trainers write the base's absolute path into adapter_config.json; clients see it relative."""
    folder = live.home / "incoming-adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(live.home / "models" / "tiny")}))
    (folder / "adapter_model.safetensors").write_bytes(bytes(64))
    async with Client(f"{live.url}/mcp/") as client:
        registered = await client.call_tool("model_register", {"name": "adapted", "path": "incoming-adapter"})
        missing_base = await client.call_tool("model_register", {"name": "adapted", "path": "incoming-adapter",
                                                                 "base_model": "models/gone"})  # fmt: skip
    assert not registered.is_error, registered.content
    assert registered.structured_content["base_model"] == "models/tiny"
    assert "argument 'base_model': nothing exists at models/gone" in refusal(missing_base)
