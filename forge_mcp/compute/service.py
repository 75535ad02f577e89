"""Compute targets: machines beyond this one that jobs can run on (DESIGN §4c).

compute_add pins an SSH host's key only when the caller vouches for it — the key itself (a
known_hosts line) or its fingerprint — and proves the login works by probing the host;
nothing is stored otherwise. A key the host presents that nobody vouched for is named in
the refusal, so the caller can check it on the host and confirm it."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from forge_mcp.compute.models import (
    ProbeResult,
    RayConfig,
    SshConfig,
    StoredTarget,
    TargetKind,
    TargetList,
    TargetRemoved,
    TargetView,
)
from forge_mcp.compute.probe import PROBE_PROGRAM, parse_probe
from forge_mcp.compute.ray_child import run_ray_program
from forge_mcp.compute.repository import ComputeRepository
from forge_mcp.compute.ssh import (
    HOST_KEY_FILES,
    SshUnavailable,
    connected,
    load_private_key,
    parse_host_key,
    presented_host_key,
    run_command,
)
from forge_mcp.errors import Conflict, InvalidArguments, NotFound, TargetUnavailable
from forge_mcp.jobs.constants import LOCAL_TARGET
from forge_mcp.security.principal import Principal
from forge_mcp.workspace import Workspace

LOCAL = LOCAL_TARGET  # this machine: not a target one can add
RAY_PROBE_TIMEOUT_S = 120.0  # joining a cluster and running one task there
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class ComputeService:
    def __init__(self, workspace: Workspace, repository: ComputeRepository,
                 on_change: Sequence[Callable[[list[StoredTarget]], None]] = (),
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self._workspace = workspace
        self._repo = repository
        self._on_change = tuple(on_change)  # the executors' set_targets: what they may place jobs on
        self._clock = clock

    async def refresh(self) -> None:
        """Hand the stored targets to the executor (at start, and after every change)."""
        targets = await self._repo.list()
        for hand_over in self._on_change:
            hand_over(targets)

    async def add(
        self,
        principal: Principal,
        name: str,
        *,
        kind: str,
        host: str | None,
        port: int,
        user: str | None,
        key_path: str | None,
        host_key: str | None,
        host_key_fingerprint: str | None,
        remote_dir: str,
        python: str,
        address: str | None,
    ) -> TargetView:
        """compute_add: the fields a kind needs must be given, and only those."""
        if kind == "ray":
            given = [field for field, value in (("host", host), ("user", user), ("key_path", key_path),
                                                ("host_key", host_key), ("host_key_fingerprint", host_key_fingerprint))
                     if value is not None]  # fmt: skip
            if address is None or given:
                raise InvalidArguments("a Ray target takes address (the head's host:6379, or ray://host:10001) "
                                       f"and none of the SSH fields{' (remove ' + ', '.join(given) + ')' if given else ''}")  # fmt: skip
            return await self.add_ray(principal, name, address=address)
        missing = [field for field, value in (("host", host), ("user", user), ("key_path", key_path)) if value is None]
        if missing or address is not None:
            raise InvalidArguments(f"an SSH target needs host, user and key_path (missing: {', '.join(missing) or 'none'})"
                                   + ("; address is for kind 'ray' only" if address is not None else ""))  # fmt: skip
        assert host is not None and user is not None and key_path is not None
        return await self.add_ssh(principal, name, host=host, port=port, user=user, key_path=key_path, host_key=host_key,
                                  host_key_fingerprint=host_key_fingerprint, remote_dir=remote_dir, python=python)  # fmt: skip

    async def add_ssh(
        self,
        principal: Principal,
        name: str,
        *,
        host: str,
        port: int,
        user: str,
        key_path: str,
        host_key: str | None,
        host_key_fingerprint: str | None,
        remote_dir: str,
        python: str,
    ) -> TargetView:
        await self._check_new(principal, name)
        _check_remote_dir(remote_dir)
        key_file = self._key_file(key_path)
        await asyncio.to_thread(load_private_key, key_file)
        pinned = await asyncio.to_thread(_vouched_host_key, host, port, host_key, host_key_fingerprint)
        config = SshConfig(host=host, port=port, user=user, key_path=self._workspace.shown(key_file),
                           host_key=f"{pinned.get_name()} {pinned.get_base64()}", host_key_fingerprint=pinned.fingerprint,
                           remote_dir=remote_dir, python=python)  # fmt: skip
        probe = await asyncio.to_thread(_probe_ssh, name, config, key_file)
        return await self._store(principal, name, "ssh", config, probe)

    async def add_ray(self, principal: Principal, name: str, *, address: str) -> TargetView:
        await self._check_new(principal, name)
        probe = await asyncio.to_thread(_probe_ray, name, address)
        return await self._store(principal, name, "ray", RayConfig(address=address), probe)

    async def _check_new(self, principal: Principal, name: str) -> None:
        """Before compute_add checks the target itself: an admin, and a name free to take."""
        principal.require("admin", "add a compute target")
        if name == LOCAL:
            raise InvalidArguments(f"argument 'name': {LOCAL!r} is this machine, where jobs run without a target; choose another name")
        if await self._repo.get(name) is not None:
            raise Conflict(f"compute target {name!r} exists; compute_remove it first to add it again")

    async def _store(self, principal: Principal, name: str, kind: TargetKind, config: SshConfig | RayConfig,
                     probe: ProbeResult) -> TargetView:  # fmt: skip
        """A checked target, with its probe; handed to the executors."""
        if not await self._repo.add(name, kind, config, principal=principal.name, created_at=self._clock(),
                                    probe=probe.model_dump()):  # fmt: skip
            raise Conflict(f"compute target {name!r} was added meanwhile; compute_remove it first to add it again")
        await self.refresh()
        return TargetView.of(await self._get(name))

    async def list(self) -> TargetList:
        return TargetList(targets=[TargetView.of(target) for target in await self._repo.list()])

    async def probe(self, name: str) -> TargetView:
        target = await self._get(name)
        if target.ray is not None:
            probe = await asyncio.to_thread(_probe_ray, name, target.ray.address)
        else:
            assert target.ssh is not None
            probe = await asyncio.to_thread(_probe_ssh, name, target.ssh, self._key_file(target.ssh.key_path))
        await self._repo.record_probe(name, probe.model_dump(), self._clock())
        await self.refresh()
        return TargetView.of(await self._get(name))

    async def remove(self, principal: Principal, name: str) -> TargetRemoved:
        principal.require("admin", "remove a compute target")
        await self._get(name)
        busy = await self._repo.remove_unless_busy(name)
        if busy:
            raise Conflict(f"compute target {name!r} has {len(busy)} job(s) queued or running there "
                           f"({', '.join(busy[:5])}); job_cancel them or wait for them to end, then remove it")  # fmt: skip
        await self.refresh()
        return TargetRemoved(name=name, removed=True)

    async def _get(self, name: str) -> StoredTarget:
        target = await self._repo.get(name)
        if target is None:
            known = ", ".join(t.name for t in await self._repo.list()) or "none yet"
            raise NotFound(f"compute target {name!r} does not exist (known: {known}); compute_add adds one")
        return target

    def _key_file(self, key_path: str) -> Path:
        key_file = self._workspace.resolve(key_path, field="key_path")
        if not key_file.is_file():
            raise InvalidArguments(f"argument 'key_path': {self._workspace.shown(key_file)} is not a file; give the "
                                   "private key's path (inside the workspace or an import root)")  # fmt: skip
        return key_file


def _vouched_host_key(host: str, port: int, host_key: str | None, fingerprint: str | None):  # noqa: ANN202 - paramiko.PKey
    """The host key to pin: the one the host presents, if the caller vouched for it."""
    if host_key is not None:
        given = parse_host_key(host_key)
        presented = presented_host_key(host, port, given.get_name())
        if presented.fingerprint != given.fingerprint:
            raise InvalidArguments(
                f"argument 'host_key': {host}:{port} presented {presented.get_name()} {presented.fingerprint}, "
                f"not the key given ({given.fingerprint}); check the host's key there ({HOST_KEY_FILES}) before "
                "trusting it"
            )
        return presented
    presented = presented_host_key(host, port, None)
    if fingerprint is None:
        raise InvalidArguments(
            f"{host}:{port} presents the host key {presented.get_name()} {presented.fingerprint}, which nobody has "
            f"confirmed yet: read the fingerprint on the host itself ({HOST_KEY_FILES}) and, if they match, call "
            f"compute_add again with host_key_fingerprint='{presented.fingerprint}' (or give host_key, a line of "
            "its known_hosts or ssh-keyscan)"
        )
    if fingerprint.removeprefix("SHA256:") != presented.fingerprint.removeprefix("SHA256:"):
        raise InvalidArguments(
            f"argument 'host_key_fingerprint': {host}:{port} presented {presented.get_name()} {presented.fingerprint}, "
            f"not {fingerprint}; check the host's key there ({HOST_KEY_FILES}) before trusting it"
        )
    return presented


def _probe_ssh(name: str, config: SshConfig, key_file: Path) -> ProbeResult:
    with connected(name, config, key_file) as client:
        status, out, err = run_command(client, [config.python, "-", config.remote_dir], stdin=PROBE_PROGRAM)
    if status != 0:
        last = (err.strip().splitlines() or ["no message"])[-1][:300]
        raise SshUnavailable(f"compute target {name!r}: {config.python!r} there exited {status} ({last}); give "
                             "python, the path of an interpreter that exists there")  # fmt: skip
    try:
        return parse_probe(out)
    except ValueError as exc:
        raise SshUnavailable(f"compute target {name!r}: the probe's answer did not parse ({exc})") from exc


def _probe_ray(name: str, address: str) -> ProbeResult:
    """Joins the cluster from a child process and reads its answer."""
    stdout = run_ray_program(name, address, [address], RAY_PROBE_TIMEOUT_S)
    try:
        return parse_probe(stdout)
    except ValueError as exc:
        raise TargetUnavailable(f"compute target {name!r}: the Ray probe's answer did not parse ({exc})") from exc


def _check_remote_dir(remote_dir: str) -> None:
    if not remote_dir or _CONTROL.search(remote_dir) or ".." in remote_dir.split("/") or remote_dir.startswith("~"):
        raise InvalidArguments("argument 'remote_dir': give a folder there, relative to the user's home (no '~', "
                               "no '..') or absolute, e.g. forge-remote")  # fmt: skip
