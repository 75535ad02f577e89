"""Settings: packaged YAML defaults < FORGE_CONFIG file < FORGE_* environment < flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from forge_mcp.errors import ConfigError
from forge_mcp.settings import is_loopback, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("FORGE_"):
            monkeypatch.delenv(name)


def test_packaged_defaults() -> None:
    settings = load_settings()
    assert settings.host == "127.0.0.1"
    assert settings.port == 8765
    assert settings.home == Path("./forge-workspace")
    assert settings.auth_enabled is False
    assert settings.toolsets is None


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FORGE_PORT", "9001")
    monkeypatch.setenv("FORGE_HOME", str(tmp_path))
    monkeypatch.setenv("FORGE_TOOLSETS", "core, jobs")
    monkeypatch.setenv("FORGE_ALLOWED_HOSTS", "forge.lan:*,forge.lan")
    monkeypatch.setenv("FORGE_IMPORT_ROOTS", f"{tmp_path}/a:{tmp_path}/b")
    settings = load_settings()
    assert settings.port == 9001
    assert settings.home == tmp_path
    assert settings.toolsets == ["core", "jobs"]
    assert settings.allowed_hosts == ["forge.lan:*", "forge.lan"]
    assert settings.import_roots == [tmp_path / "a", tmp_path / "b"]


def test_config_file_layers_over_defaults_and_under_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("port: 7000\nlog_level: DEBUG\n")
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    monkeypatch.setenv("FORGE_LOG_LEVEL", "WARNING")
    settings = load_settings()
    assert settings.port == 7000
    assert settings.log_level == "WARNING"


def test_flags_override_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_PORT", "9001")
    assert load_settings(port=1234).port == 1234


def test_every_problem_is_listed_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_PORT", "99999")
    with pytest.raises(ConfigError) as err:
        load_settings(auth="sometimes")
    assert "port" in err.value.message and "auth" in err.value.message


def test_unknown_key_in_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "mine.yaml"
    config.write_text("prot: 7000\n")
    monkeypatch.setenv("FORGE_CONFIG", str(config))
    with pytest.raises(ConfigError, match="prot"):
        load_settings()


def test_missing_config_file_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FORGE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


@pytest.mark.parametrize(
    ("host", "auth", "enabled"),
    [
        ("127.0.0.1", "auto", False),
        ("::1", "auto", False),
        ("localhost", "auto", False),
        ("0.0.0.0", "auto", True),
        ("192.168.1.5", "auto", True),
        ("127.0.0.1", "on", True),
        ("127.0.0.1", "off", False),
    ],
)
def test_auth_is_on_off_loopback(host: str, auth: str, enabled: bool) -> None:
    assert load_settings(host=host, auth=auth).auth_enabled is enabled


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.2") and is_loopback("::1") and not is_loopback("0.0.0.0")
