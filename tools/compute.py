"""Compute: machines beyond this one that jobs can run on — SSH hosts (and, next, a Ray
cluster). A target's private key never leaves the workspace file it is in; its host key is
pinned when it is added and checked on every connection."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.compute.models import TargetList, TargetRemoved, TargetView
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("compute", "Machines jobs can run on: add an SSH host with a pinned host key, list, probe, remove.")

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Lowercase slug, e.g. gpu-box")]


@toolset.capability(scope="admin", title="Add an SSH compute target")
async def compute_add(
    services: Services,
    principal: Principal,
    name: Name,
    host: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,253}$", description="Host name or address")],
    user: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")],
    key_path: Annotated[str, Field(description="Private key file (no passphrase), in the workspace or an import root")],
    port: Annotated[int, Field(ge=1, le=65535)] = 22,
    host_key: Annotated[str | None, Field(max_length=16_384, description="A known_hosts or ssh-keyscan line")] = None,
    host_key_fingerprint: Annotated[str | None, Field(pattern=r"^(SHA256:)?[A-Za-z0-9+/]{43}=?$")] = None,
    remote_dir: Annotated[str, Field(max_length=512, description="Its workspace there, from the home folder")] = "forge-remote",
    python: Annotated[str, Field(pattern=r"^[^\s]{1,512}$", description="The interpreter there with forge-mcp")] = "python3",
) -> TargetView:
    """Adds an SSH host as a compute target after checking it: its host key must match host_key or
    host_key_fingerprint (without either, the refusal names the key it presents, to check on the
    host and confirm), the key must log in, and python must run there; a probe (CPUs, RAM, disk,
    GPUs, forge-mcp's version) is stored with it. Secrets are never returned. Seconds."""
    return await services.compute.add_ssh(
        principal, name, host=host, port=port, user=user, key_path=key_path, host_key=host_key,
        host_key_fingerprint=host_key_fingerprint, remote_dir=remote_dir, python=python,
    )  # fmt: skip


@toolset.capability(scope="read", title="List compute targets", read_only=True)
async def compute_list(services: Services) -> TargetList:
    """Every compute target with where it is, its host key's fingerprint and its last probe.
    Instant, read-only."""
    return await services.compute.list()


@toolset.capability(scope="train", title="Probe a compute target", read_only=True)
async def compute_probe(services: Services, name: Name) -> TargetView:
    """Connects to the target (its pinned host key checked) and reports what it has now: OS, CPUs,
    RAM, free disk where its workspace is, GPUs with memory (nvidia-smi), Python, forge-mcp's
    version (None: not installed for that python). Seconds."""
    return await services.compute.probe(name)


@toolset.capability(scope="admin", title="Remove a compute target", destructive=True)
async def compute_remove(services: Services, principal: Principal, name: Name) -> TargetRemoved:
    """Forgets a compute target (its key file and the host are untouched). Refused while jobs are
    queued or running there. Instant."""
    return await services.compute.remove(principal, name)
