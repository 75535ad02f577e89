"""The `forge-mcp` command as a user types it."""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import forge_cli


def test_call_prints_the_json_result(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "call", "system_status", "--args", '{"sample_seconds": 0.05}')
    assert result.returncode == 0, result.stderr
    assert 0 <= json.loads(result.stdout)["memory_percent"] <= 100


def test_call_overview_shows_the_workspace(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "call", "forge_overview")
    assert result.returncode == 0, result.stderr
    overview = json.loads(result.stdout)
    assert overview["workspace"]["root"] == str((tmp_path / "ws").resolve())
    assert {e["name"] for e in overview["extras"]} >= {"train", "mlx", "agent", "llamacpp"}


def test_call_with_bad_input_explains_and_exits_2(tmp_path: Path) -> None:
    bad_json = forge_cli(tmp_path / "ws", "call", "system_status", "--args", "{nope")
    bad_field = forge_cli(tmp_path / "ws", "call", "system_status", "--args", '{"sample_seconds": -1}')
    unknown = forge_cli(tmp_path / "ws", "call", "warp_drive")
    assert bad_json.returncode == 2 and "--args is not valid JSON" in bad_json.stderr
    assert bad_field.returncode == 2 and "'sample_seconds'" in bad_field.stderr
    assert unknown.returncode == 2 and "unknown tool 'warp_drive'" in unknown.stderr
    for result in (bad_json, bad_field, unknown):
        assert "Traceback" not in result.stderr


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    created = forge_cli(home, "keys", "create", "--name", "cursor", "--scopes", "read,train")
    assert created.returncode == 0
    key = created.stdout.strip()
    assert key.startswith("forge_") and "shown only this once" in created.stderr
    listed = forge_cli(home, "keys", "list").stdout
    assert "cursor" in listed and "read,train" in listed and "active" in listed and key not in listed
    assert forge_cli(home, "keys", "revoke", "cursor").returncode == 0
    assert "revoked" in forge_cli(home, "keys", "list").stdout
    again = forge_cli(home, "keys", "create", "--name", "cursor", "--scopes", "read")
    assert again.returncode == 2 and "already exists" in again.stderr
    bad_scope = forge_cli(home, "keys", "create", "--name", "x", "--scopes", "sudo")
    assert bad_scope.returncode == 2 and "choose from read, train, admin" in bad_scope.stderr


def test_serving_beyond_loopback_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "serve", "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert result.returncode == 2
    assert "forge-mcp keys create --name" in result.stderr
    assert "Traceback" not in result.stderr


def test_serving_beyond_loopback_with_auth_off_refuses_to_start(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "serve", "--host", "0.0.0.0", "--port", "0", "--auth", "off", timeout=60)
    assert result.returncode == 2 and "without authentication" in result.stderr


def test_unknown_toolset_is_refused(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "stdio", "--toolsets", "core,quantum")
    assert result.returncode == 2 and "unknown toolset(s) quantum" in result.stderr


def test_tools_lists_names_and_scopes(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "tools")
    assert result.returncode == 0
    assert "forge_overview" in result.stdout and "scope=read" in result.stdout


def test_client_config_writes_import_roots_into_stdio_configs(tmp_path: Path) -> None:
    data, more = tmp_path / "data", tmp_path / "more"
    data.mkdir()
    more.mkdir()
    result = forge_cli(tmp_path / "ws", "client-config", "claude-desktop", "--import-root", str(data),
                       "--import-root", str(more / ".." / "more"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["mcpServers"]["forge"]["env"]
    assert env["FORGE_IMPORT_ROOTS"].split(os.pathsep) == [str(data.resolve()), str(more.resolve())]
    plain = json.loads(forge_cli(tmp_path / "ws", "client-config", "cursor").stdout)
    assert "FORGE_IMPORT_ROOTS" not in plain["mcpServers"]["forge"]["env"]


def test_client_config_import_root_for_http_is_a_server_setting(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "client-config", "cursor-http", "--import-root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "env" not in json.loads(result.stdout)["mcpServers"]["forge"]
    assert f"start `forge-mcp serve` with FORGE_IMPORT_ROOTS={tmp_path.resolve()}" in result.stderr


def test_client_config_refuses_an_import_root_that_is_not_a_folder(tmp_path: Path) -> None:
    result = forge_cli(tmp_path / "ws", "client-config", "cursor", "--import-root", str(tmp_path / "nope"))
    assert result.returncode == 2 and "--import-root" in result.stderr and "is not a folder" in result.stderr
    assert result.stdout == ""


def test_dev_tiny_model_builds_a_chat_model_that_loads(tmp_path: Path) -> None:
    """The command the demos run when the workspace has no model yet (they find one prebuilt
    in the suite, so this is where the command itself is held to its word)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tmp_path / "ws" / "models" / "tiny"
    built = forge_cli(tmp_path / "ws", "dev", "tiny-model", str(model), "--steps", "3", timeout=300)
    assert built.returncode == 0, built.stderr
    info = json.loads(built.stdout[built.stdout.index("{"):])
    assert info["path"] == str(model.resolve()) and info["steps"] == 3 and info["built_by"] == "forge-mcp dev tiny-model"
    tokenizer = AutoTokenizer.from_pretrained(model)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    loaded = AutoModelForCausalLM.from_pretrained(model)
    logits = loaded(**tokenizer(prompt, return_tensors="pt")).logits
    assert prompt.endswith("<|im_start|>assistant\n") and logits.shape[-1] == loaded.config.vocab_size >= len(tokenizer)
