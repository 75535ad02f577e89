"""The SSH executor: a job's worker runs on a compute target (forge_mcp/compute), with that
machine's own forge-mcp, in its own session there, so it outlives the connection and the
server; a restarted server finds it again by host, pid and start time.

Launch pushes over SFTP what the worker reads — the workspace paths its arguments name (a
dataset version, a base model, an adapter) and its run folder — skipping every file whose
size and sha256 are already the same there, writes job.json with the target's workspace
(`remote_dir`) and starts `python -m forge_mcp.worker` through `forge_mcp.compute.remote_ops`.
Events and the log are read back over SFTP from where the last read ended; outputs (the
run folder) are pulled home before the job is published; stop and kill signal the process
group there. paramiko blocks: every call runs in a thread, one at a time per target."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from forge_mcp import __version__
from forge_mcp.compute.models import StoredTarget
from forge_mcp.compute.proc_stat import boot_time, proc_alive
from forge_mcp.compute.ssh import SshUnavailable, open_client, run_command
from forge_mcp.compute.tunnel import SshTunnel
from forge_mcp.jobs.admission import Capacity
from forge_mcp.jobs.catalog import TEST_KINDS_ENV
from forge_mcp.jobs.events import complete_events
from forge_mcp.jobs.executors.base import LogChunk, Poll, WorkerHandle
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.jobs.spec import JobSpec, WorkerWorkspace
from forge_mcp.workspace import Workspace

SPEC_FILE = "job.json"
PULL_SKIPPED = frozenset({SPEC_FILE})  # the server's job.json names its own workspace: never replaced


@dataclass
class _Session:
    """One target's connection: its client, SFTP channel and workspace there."""

    name: str  # the target's
    client: Any
    sftp: Any
    root: str  # absolute, on the target
    lock: threading.Lock = field(default_factory=threading.Lock)
    boot_time: float | None = None  # from its /proc/stat, once; 0.0: it has no /proc


class SshExecutor:
    name = "ssh"

    def __init__(self, workspace: Workspace) -> None:
        self._workspace = workspace
        # Rewritten per target at launch (job.json names the target's own workspace).
        self.worker_workspace = WorkerWorkspace(root=workspace.root)
        self._targets: dict[str, StoredTarget] = {}
        self._sessions: dict[str, _Session] = {}
        self._offsets: dict[str, int] = {}  # job id -> how far its events were read
        self._digests: dict[tuple[str, int, int], str] = {}  # (local path, size, mtime_ns) -> sha256
        self._tunnels: dict[str, SshTunnel] = {}  # job id -> the forward to the service it runs there

    # targets ---------------------------------------------------------------------------

    def set_targets(self, targets: Sequence[StoredTarget]) -> None:
        """The SSH targets now (compute_add/remove call this); a removed one's connection closes."""
        self._targets = {t.name: t for t in targets if t.ssh is not None}
        for name in [n for n in self._sessions if n not in self._targets]:
            self._close(name)

    def hosts(self) -> Mapping[str, Capacity]:
        """Each target takes one job per GPU its probe found, and one CPU job at a time."""
        out = {}
        for name, target in self._targets.items():
            probe = target.probe or {}
            out[name] = Capacity(gpu_slots=len(probe.get("gpus") or []), cpu_slots=1, memory_gb=float(probe.get("ram_gb") or 0))
        return out

    # the executor interface ------------------------------------------------------------

    async def launch(self, job_id: str, run: RunDir, host: str | None) -> WorkerHandle:
        if host is None or host not in self._targets:
            raise OSError(f"compute target {host!r} is not configured (compute_list shows the targets)")
        self._offsets[job_id] = 0
        return await asyncio.to_thread(self._with_session, host, self._launch, job_id, run)

    async def poll(self, handle: WorkerHandle) -> Poll:
        return await asyncio.to_thread(self._with_session, handle.host, self._poll, handle)

    async def logs(self, handle: WorkerHandle, since: int | None = None, max_bytes: int = 16_384) -> LogChunk:
        return await asyncio.to_thread(self._with_session, handle.host, self._logs, handle, since, max_bytes)

    async def collect(self, handle: WorkerHandle, paths: Sequence[Path]) -> None:
        await asyncio.to_thread(self._with_session, handle.host, self._collect, paths)

    async def stop(self, handle: WorkerHandle) -> None:
        await asyncio.to_thread(self._with_session, handle.host, self._signal, handle, "TERM")

    async def kill(self, handle: WorkerHandle) -> None:
        self._close_tunnel(handle.job_id)
        await asyncio.to_thread(self._with_session, handle.host, self._signal, handle, "KILL")

    # blocking parts, run in a thread ---------------------------------------------------

    def _with_session(self, host: str, operation: Any, *args: Any) -> Any:
        session = self._session(host)
        with session.lock:
            try:
                return operation(session, *args)
            except (OSError, EOFError) as exc:  # the connection broke: the next call opens a new one
                self._close(host)
                raise OSError(f"compute target {host!r}: {exc}") from exc

    def _session(self, host: str) -> _Session:
        session = self._sessions.get(host)
        if session is not None and session.client.get_transport() is not None and session.client.get_transport().is_active():
            return session
        target = self._targets.get(host)
        if target is None or target.ssh is None:
            raise OSError(f"compute target {host!r} is not configured (compute_list shows the targets)")
        key_file = self._workspace.resolve(target.ssh.key_path, field="key_path")
        try:
            client = open_client(host, target.ssh, key_file)
        except SshUnavailable as exc:
            raise OSError(str(exc)) from exc
        sftp = client.open_sftp()
        _makedirs(sftp, target.ssh.remote_dir)
        session = _Session(name=host, client=client, sftp=sftp, root=sftp.normalize(target.ssh.remote_dir))
        self._sessions[host] = session
        return session

    def _close(self, host: str) -> None:
        session = self._sessions.pop(host, None)
        if session is not None:
            session.client.close()

    def _remote(self, session: _Session, local: Path) -> str:
        """Where a workspace path is on the target."""
        return posixpath.join(session.root, PurePosixPath(local.relative_to(self._workspace.root)).as_posix())

    def _launch(self, session: _Session, job_id: str, run: RunDir) -> WorkerHandle:
        target = self._targets[session.name]
        assert target.ssh is not None
        there = (target.probe or {}).get("forge_mcp")
        if there != __version__:  # the worker there must read the job.json this server writes
            raise OSError(f"compute target {session.name!r} has forge-mcp {there or 'not installed'} for {target.ssh.python}, "
                          f"this server {__version__}: install forge-mcp {__version__} there, then compute_probe it")  # fmt: skip
        spec = JobSpec.read(run)
        for local in [*self._inputs(spec.arguments), run.path]:
            self._push(session, local)
        remote_run = self._remote(session, run.path)
        _makedirs(session.sftp, remote_run)
        remote_spec = spec.model_copy(update={"workspace": WorkerWorkspace(root=Path(session.root))})
        _write(session.sftp, posixpath.join(remote_run, SPEC_FILE), remote_spec.model_dump_json(indent=2).encode())
        events = self._remote(session, run.events)
        if _exists(session.sftp, events):
            session.sftp.remove(events)  # an earlier attempt's: this attempt starts a new file, as locally
        # The engine's own tests' job kinds exist where the server has them (jobs/catalog.py), there too.
        test_kinds = "1" if os.environ.get(TEST_KINDS_ENV) == "1" else ""
        started = self._remote_op(session, target.ssh.python, ["launch", remote_run, job_id, test_kinds])
        return WorkerHandle(job_id=job_id, run=run, host=session.name, pid=int(started["pid"]),
                            started_at=float(started["started_at"]))  # fmt: skip

    def _poll(self, session: _Session, handle: WorkerHandle) -> Poll:
        alive = self._alive(session, handle)
        # Read after the liveness check: once the worker is gone, everything it wrote is in the file.
        events = self._read_events(session, handle)
        if not alive:
            self._offsets.pop(handle.job_id, None)
            self._close_tunnel(handle.job_id)
        elif handle.job_id not in self._tunnels:
            self._tunnel_service(session, handle)
        return Poll(alive=alive, exit_code=None, events=tuple(events))

    def _tunnel_service(self, session: _Session, handle: WorkerHandle) -> None:
        """A job that serves there announces its endpoint (service.json, on the target's loopback):
        the server forwards a loopback port here to it and writes the endpoint as reached from here,
        so serve_list, model_generate and the chat operator use it like a local service's. Again
        after a restart: the re-attached job's first poll opens a new forward."""
        try:
            announced = json.loads(_read(session.sftp, self._remote(session, handle.run.service)))
            remote = urlsplit(announced["url"])
        except (FileNotFoundError, ValueError, KeyError):
            return  # not a service, or not listening yet
        if remote.hostname not in ("127.0.0.1", "localhost") or remote.port is None:
            return
        tunnel = SshTunnel(lambda: self._with_session(handle.host, lambda s: s.client.get_transport()), remote.port,
                           handle.host)  # fmt: skip
        local_port = tunnel.start()
        self._tunnels[handle.job_id] = tunnel
        here = {**announced, "url": remote._replace(netloc=f"127.0.0.1:{local_port}").geturl()}
        partial = handle.run.service.with_name(f".{handle.run.service.name}.forge-partial")
        partial.write_text(json.dumps(here))
        partial.replace(handle.run.service)

    def _close_tunnel(self, job_id: str) -> None:
        tunnel = self._tunnels.pop(job_id, None)
        if tunnel is not None:
            tunnel.close()

    def _alive(self, session: _Session, handle: WorkerHandle) -> bool:
        """From /proc over the open SFTP channel (no process started there each poll); through
        remote_ops on a target without /proc."""
        if session.boot_time is None:
            try:
                session.boot_time = boot_time(_read(session.sftp, "/proc/stat").decode())
            except (OSError, ValueError):
                session.boot_time = 0.0  # no /proc: ask remote_ops every time
        if session.boot_time:
            try:
                return proc_alive(_read(session.sftp, f"/proc/{handle.pid}/stat").decode(), session.boot_time,
                                  handle.started_at)  # fmt: skip
            except FileNotFoundError:
                return False
            except (ValueError, IndexError):  # not the layout expected: ask the target's own psutil
                pass
        target = self._targets[handle.host]
        assert target.ssh is not None
        return bool(self._remote_op(session, target.ssh.python, ["alive", str(handle.pid), repr(handle.started_at)])["alive"])

    def _read_events(self, session: _Session, handle: WorkerHandle) -> list[dict[str, Any]]:
        offset = self._offsets.get(handle.job_id, 0)
        path = self._remote(session, handle.run.events)
        try:
            with session.sftp.open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return []
        used, events = complete_events(data)
        self._offsets[handle.job_id] = offset + used
        return events

    def _logs(self, session: _Session, handle: WorkerHandle, since: int | None, max_bytes: int) -> LogChunk:
        path = self._remote(session, handle.run.log)
        try:
            size = session.sftp.stat(path).st_size or 0
        except FileNotFoundError:
            return LogChunk(text="", next_offset=0, size=0, truncated=False)
        requested = min(since or 0, size)
        start = max(requested, size - max_bytes)
        with session.sftp.open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
        return LogChunk(text=data.decode("utf-8", errors="replace"), next_offset=start + len(data), size=size,
                        truncated=start > requested)  # fmt: skip

    def _collect(self, session: _Session, paths: Sequence[Path]) -> None:
        for local in paths:
            self._pull(session, self._remote(session, local), local)

    def _signal(self, session: _Session, handle: WorkerHandle, name: str) -> None:
        target = self._targets[handle.host]
        assert target.ssh is not None
        self._remote_op(session, target.ssh.python, ["signal", str(handle.pid), repr(handle.started_at), name, handle.job_id])

    # transfers -------------------------------------------------------------------------

    def _inputs(self, arguments: dict[str, Any]) -> list[Path]:
        """The workspace files and folders the job's arguments name (the worker resolves the same
        strings against its own workspace). A path in an import root cannot follow the job there."""
        found: list[Path] = []
        for value in _strings(arguments):
            if "/" not in value or value.startswith(("http://", "https://")):
                continue
            candidate = Path(value) if value.startswith("/") else self._workspace.root / value
            try:
                resolved = candidate.resolve()
            except OSError:
                continue
            if not resolved.exists():
                continue
            if not resolved.is_relative_to(self._workspace.root):
                raise OSError(f"{value} is outside the workspace: a job on a compute target gets workspace paths only; "
                              "import it into the workspace first")  # fmt: skip
            found.append(resolved)
        return found

    def _push(self, session: _Session, local: Path) -> None:
        """Copy a file or folder there, skipping files already the same (size and sha256)."""
        files = [local] if local.is_file() else sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink())
        files = [f for f in files if f.name != SPEC_FILE or f.parent != local]  # job.json is written for the target
        relative = [PurePosixPath(f.relative_to(self._workspace.root)).as_posix() for f in files]
        target = self._targets[session.name]
        assert target.ssh is not None
        there = self._remote_op(session, target.ssh.python, ["digest", session.root], stdin=json.dumps(relative))
        for path, name in zip(files, relative, strict=True):
            if there.get(name) == [path.stat().st_size, self._sha256(path)]:
                continue
            remote = posixpath.join(session.root, name)
            _makedirs(session.sftp, posixpath.dirname(remote))
            partial = f"{remote}.forge-partial"
            session.sftp.put(str(path), partial)
            session.sftp.posix_rename(partial, remote)

    def _pull(self, session: _Session, remote: str, local: Path) -> None:
        """A folder (recursively) or one file, skipping files whose size and mtime match here."""
        try:
            info = session.sftp.stat(remote)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(info.st_mode or 0):
            if stat.S_ISREG(info.st_mode or 0) and local.name not in PULL_SKIPPED:
                self._pull_file(session, remote, local, info)
            return
        local.mkdir(parents=True, exist_ok=True)
        for entry in session.sftp.listdir_attr(remote):
            there, here = posixpath.join(remote, entry.filename), local / entry.filename
            if stat.S_ISDIR(entry.st_mode or 0):
                self._pull(session, there, here)
            elif stat.S_ISREG(entry.st_mode or 0) and entry.filename not in PULL_SKIPPED:
                self._pull_file(session, there, here, entry)

    def _pull_file(self, session: _Session, there: str, here: Path, info: Any) -> None:
        if here.is_file() and here.stat().st_size == info.st_size and int(here.stat().st_mtime) == info.st_mtime:
            return
        here.parent.mkdir(parents=True, exist_ok=True)
        partial = here.with_name(f".{here.name}.forge-partial")
        session.sftp.get(there, str(partial))
        os.utime(partial, (info.st_atime or info.st_mtime, info.st_mtime))  # the next pull skips it
        partial.replace(here)

    def _sha256(self, path: Path) -> str:
        info = path.stat()
        key = (str(path), info.st_size, info.st_mtime_ns)
        if key not in self._digests:
            sha = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    sha.update(block)
            self._digests[key] = sha.hexdigest()
        return self._digests[key]

    def _remote_op(self, session: _Session, python: str, args: list[str], stdin: str = "") -> dict[str, Any]:
        status, out, err = run_command(session.client, [python, "-m", "forge_mcp.compute.remote_ops", *args], stdin=stdin)
        if status != 0:
            last = (err.strip().splitlines() or ["no message"])[-1][:300]
            raise OSError(f"remote_ops {args[0]} exited {status} there ({last}); is forge-mcp installed for {python}?")
        return json.loads(out.strip().splitlines()[-1])


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list | tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _makedirs(sftp: Any, path: str) -> None:
    """mkdir -p over SFTP (a relative path is from the user's home)."""
    parts = PurePosixPath(path).parts
    for i in range(1, len(parts) + 1):
        prefix = str(PurePosixPath(*parts[:i]))
        if prefix in ("/", "."):
            continue
        try:
            sftp.stat(prefix)
        except FileNotFoundError:
            sftp.mkdir(prefix)


def _exists(sftp: Any, path: str) -> bool:
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def _read(sftp: Any, path: str) -> bytes:
    with sftp.open(path, "rb") as f:
        return f.read()


def _write(sftp: Any, path: str, data: bytes) -> None:
    partial = f"{path}.forge-partial"
    with sftp.open(partial, "wb") as f:
        f.write(data)
    sftp.posix_rename(partial, path)
