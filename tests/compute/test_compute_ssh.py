"""Compute targets over a real sshd on loopback, through the MCP client: a host is added only
when its host key is vouched for and its login works, its probe is real, secrets never come
back, and a changed host key, a wrong or out-of-bounds key and an unreachable host are
refused with what to do."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp import __version__
from forge_mcp.server_process import ServerProcess
from tests.compute.sshd import Sshd, free_port, keygen

pytest.importorskip("paramiko")
pytestmark = pytest.mark.e2e


def target(sshd: Sshd, **overrides: Any) -> dict[str, Any]:
    return {"name": "box", "host": sshd.host, "port": sshd.port, "user": sshd.user, "key_path": "keys/box",
            "python": sys.executable, **overrides}  # fmt: skip


async def call(server: ServerProcess, tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(f"{server.url}/mcp/") as client:
        return await client.call_tool(tool, arguments)


def error_text(result: Any) -> str:
    assert result.is_error, result.structured_content
    return result.content[0].text


async def test_a_host_is_added_once_its_key_is_confirmed_and_probed(server: ServerProcess, sshd: Sshd) -> None:
    refused = error_text(await call(server, "compute_add", target(sshd)))
    assert sshd.host_fingerprint() in refused and "host_key_fingerprint" in refused and "ssh-keygen -lf" in refused

    added = await call(server, "compute_add", target(sshd, host_key_fingerprint=sshd.host_fingerprint()))
    assert not added.is_error, added.content
    box = added.structured_content
    assert box["host_key_fingerprint"] == sshd.host_fingerprint() and box["key_path"] == "keys/box"
    probe = box["probe"]
    assert probe["cpus"] >= 1 and probe["ram_gb"] > 0 and probe["disk_free_gb"] > 0
    assert probe["python"] == ".".join(map(str, sys.version_info[:3])) and probe["forge_mcp"] == __version__

    listed = await call(server, "compute_list", {})
    again = await call(server, "compute_probe", {"name": "box"})
    assert [t["name"] for t in listed.structured_content["targets"]] == ["box"]
    assert again.structured_content["probed_at"] >= box["probed_at"]
    private = (server.home / "keys" / "box").read_text()
    for reply in (added, listed, again):  # the private key never comes back, whole or in part
        text = str(reply.structured_content)
        assert "PRIVATE KEY" not in text and private.splitlines()[1][:40] not in text

    taken = error_text(await call(server, "compute_add", target(sshd, host_key_fingerprint=sshd.host_fingerprint())))
    assert "exists" in taken and "compute_remove" in taken
    assert not (await call(server, "compute_remove", {"name": "box"})).is_error
    assert "does not exist" in error_text(await call(server, "compute_probe", {"name": "box"}))


async def test_a_known_hosts_line_is_accepted_and_a_wrong_one_refused(server: ServerProcess, sshd: Sshd, tmp_path: Path) -> None:
    line = f"[{sshd.host}]:{sshd.port} {sshd.host_public_key}"
    assert not (await call(server, "compute_add", target(sshd, host_key=line))).is_error

    other = keygen(tmp_path / "other_host")
    wrong = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    refused = error_text(await call(server, "compute_add", target(sshd, name="box2", host_key=wrong)))
    assert "host_key" in refused and sshd.host_fingerprint() in refused and "not the key given" in refused
    mistyped = error_text(await call(server, "compute_add", target(
        sshd, name="box3", host_key_fingerprint="SHA256:" + "A" * 43)))  # fmt: skip
    assert "host_key_fingerprint" in mistyped and sshd.host_fingerprint() in mistyped


async def test_a_changed_host_key_is_refused_saying_how_to_fix_it(server: ServerProcess, sshd: Sshd) -> None:
    pinned = sshd.host_fingerprint()
    assert not (await call(server, "compute_add", target(sshd, host_key_fingerprint=pinned))).is_error
    sshd.change_host_key()
    refused = error_text(await call(server, "compute_probe", {"name": "box"}))
    assert "changed" in refused and pinned in refused and sshd.host_fingerprint() in refused
    assert "compute_remove" in refused and "compute_add" in refused


async def test_keys_that_cannot_log_in_or_lie_outside_the_roots_are_refused(server: ServerProcess, sshd: Sshd, tmp_path: Path) -> None:
    fingerprint = sshd.host_fingerprint()
    outside = keygen(tmp_path / "outside_key")
    refused = error_text(await call(server, "compute_add", target(sshd, key_path=str(outside), host_key_fingerprint=fingerprint)))
    assert "key_path" in refused and "FORGE_IMPORT_ROOTS" in refused

    keygen(server.home / "keys" / "stranger")  # a real key, but not in authorized_keys
    refused = error_text(await call(server, "compute_add", target(sshd, key_path="keys/stranger", host_key_fingerprint=fingerprint)))
    assert "refused the key" in refused and "authorized_keys" in refused

    missing = error_text(await call(server, "compute_add", target(sshd, key_path="keys/none", host_key_fingerprint=fingerprint)))
    assert "key_path" in missing and "not a file" in missing
    (server.home / "keys" / "text").write_text("not a key\n")
    garbled = error_text(await call(server, "compute_add", target(sshd, key_path="keys/text", host_key_fingerprint=fingerprint)))
    assert "key_path" in garbled and "private key" in garbled

    no_python = error_text(await call(server, "compute_add", target(sshd, python="/nonexistent/python3", host_key_fingerprint=fingerprint)))
    assert "python" in no_python and "exited" in no_python
    unreachable = error_text(await call(server, "compute_add", target(sshd, port=free_port(), host_key_fingerprint=fingerprint)))
    assert "cannot reach" in unreachable
    assert (await call(server, "compute_list", {})).structured_content["targets"] == []
