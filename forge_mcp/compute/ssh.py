"""SSH to a compute target with paramiko, blocking (callers run it in a thread).

The host key is pinned when the target is added and checked on every connection; an
unknown or changed key is refused, never added (DESIGN §7). Authentication is the
target's private key only: no agent, no keys looked up in ~/.ssh, no password. Errors say
what happened and what to do, in words a caller can act on, never a traceback."""

from __future__ import annotations

import base64
import binascii
import shlex
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from forge_mcp.compute.models import SshConfig
from forge_mcp.errors import InvalidArguments, MissingExtra, TargetUnavailable

if TYPE_CHECKING:
    import paramiko

CONNECT_TIMEOUT_S = 15.0
COMMAND_TIMEOUT_S = 60.0
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521")
RSA_ALGORITHMS = ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")  # the signatures an ssh-rsa host key makes
HOST_KEY_FILES = "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub"  # how to read a host's fingerprint there


class SshUnavailable(TargetUnavailable):
    """An SSH host could not be reached or refused us."""


def _paramiko() -> object:
    try:
        import paramiko
    except ImportError as exc:
        raise MissingExtra("SSH compute targets", "remote") from exc
    return paramiko


def parse_host_key(text: str) -> paramiko.PKey:
    """A public key from a known_hosts line ("[host]:port ssh-ed25519 AAAA…"), a .pub file's
    line ("ssh-ed25519 AAAA… comment") or just "ssh-ed25519 AAAA…"."""
    import paramiko

    tokens = text.split()
    for i, token in enumerate(tokens[:-1]):
        if token in KEY_TYPES:
            try:
                return paramiko.PKey.from_type_string(token, base64.b64decode(tokens[i + 1], validate=True))
            except (binascii.Error, ValueError, paramiko.SSHException) as exc:
                raise InvalidArguments(f"argument 'host_key': the {token} key in it does not decode ({exc})") from exc
    raise InvalidArguments(
        "argument 'host_key': no public key found; give a line of `ssh-keyscan -p PORT HOST` or the host's "
        f"/etc/ssh/ssh_host_*_key.pub ({', '.join(KEY_TYPES)}), or give host_key_fingerprint instead"
    )


def load_private_key(path: Path) -> paramiko.PKey:
    import paramiko

    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise InvalidArguments(
            "argument 'key_path': the key is protected by a passphrase, which forge-mcp cannot type; make it a key "
            "of its own without one (ssh-keygen -t ed25519 -N '' -f KEY) and add KEY.pub to the host's "
            "~/.ssh/authorized_keys"
        ) from exc
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise InvalidArguments(f"argument 'key_path': not a private key paramiko can read ({exc})") from exc


def presented_host_key(host: str, port: int, key_type: str | None) -> paramiko.PKey:
    """The key the host presents (of `key_type`, when given: a host has several), read
    before any trust is given: nothing is authenticated."""
    paramiko = _paramiko()
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
    except OSError as exc:
        raise SshUnavailable(f"cannot reach {host}:{port}: {exc.strerror or exc}; is sshd running there and the port right?") from exc
    transport = paramiko.Transport(sock)  # type: ignore[attr-defined]
    if key_type is not None:
        transport.get_security_options().key_types = RSA_ALGORITHMS if key_type == "ssh-rsa" else (key_type,)
    try:
        transport.start_client(timeout=CONNECT_TIMEOUT_S)
        return transport.get_remote_server_key()
    except paramiko.SSHException as exc:  # type: ignore[attr-defined]
        raise SshUnavailable(f"{host}:{port} did not complete an SSH handshake ({exc}); is it an SSH server?") from exc
    finally:
        transport.close()


@contextmanager
def connected(name: str, config: SshConfig, key_file: Path) -> Iterator[paramiko.SSHClient]:
    """An authenticated session with the target for the block's length."""
    client = open_client(name, config, key_file)
    try:
        yield client
    finally:
        client.close()


def open_client(name: str, config: SshConfig, key_file: Path) -> paramiko.SSHClient:
    """An authenticated session with the target, its host key checked against the pinned one."""
    paramiko = _paramiko()
    client = paramiko.SSHClient()  # type: ignore[attr-defined]
    client.set_missing_host_key_policy(paramiko.RejectPolicy())  # type: ignore[attr-defined]
    pinned = parse_host_key(config.host_key)
    client.get_host_keys().add(config.known_hosts_name(), pinned.get_name(), pinned)
    where = f"{config.user}@{config.host}:{config.port}"
    try:
        client.connect(
            config.host, port=config.port, username=config.user, pkey=load_private_key(key_file),
            look_for_keys=False, allow_agent=False, timeout=CONNECT_TIMEOUT_S,
            banner_timeout=CONNECT_TIMEOUT_S, auth_timeout=CONNECT_TIMEOUT_S,
        )  # fmt: skip
    except paramiko.BadHostKeyException as exc:  # type: ignore[attr-defined]
        client.close()
        raise SshUnavailable(
            f"compute target {name!r}: the host key of {config.host}:{config.port} changed: pinned "
            f"{config.host_key_fingerprint}, presented {exc.key.fingerprint}. Nothing was sent. If the host was "
            f"reinstalled or its keys rotated, read its fingerprint there ({HOST_KEY_FILES}), then compute_remove "
            f"{name!r} and compute_add it again with that host_key_fingerprint; if not, someone may be in the "
            "middle: do not use it"
        ) from exc
    except paramiko.AuthenticationException as exc:  # type: ignore[attr-defined]
        client.close()
        raise SshUnavailable(
            f"compute target {name!r}: {where} refused the key {config.key_path}; add its public half "
            f"(ssh-keygen -y -f KEY) to ~{config.user}/.ssh/authorized_keys there"
        ) from exc
    except (OSError, paramiko.SSHException) as exc:  # type: ignore[attr-defined]
        client.close()
        raise SshUnavailable(f"compute target {name!r}: cannot connect to {where}: {exc}") from exc
    return client


def run_command(client: paramiko.SSHClient, argv: list[str], stdin: str = "", timeout_s: float = COMMAND_TIMEOUT_S) -> tuple[int, str, str]:
    """Run argv there (each word quoted for the remote shell); (exit status, stdout, stderr)."""
    command = " ".join(shlex.quote(word) for word in argv)
    channel_in, channel_out, channel_err = client.exec_command(command, timeout=timeout_s)
    if stdin:
        channel_in.write(stdin)
    channel_in.channel.shutdown_write()
    out = channel_out.read().decode(errors="replace")
    err = channel_err.read().decode(errors="replace")
    return channel_out.channel.recv_exit_status(), out, err
