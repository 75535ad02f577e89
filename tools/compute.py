"""Compute: machines beyond this one that jobs can run on — SSH hosts and Ray clusters. An SSH
target's private key never leaves the workspace file it is in; its host key is pinned when it
is added and checked on every connection."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from forge_mcp.capabilities import Toolset
from forge_mcp.compute.models import TargetList, TargetRemoved, TargetView
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("compute", "Machines jobs can run on: add an SSH host (pinned host key) or a Ray cluster, list, probe, remove.")

Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="Lowercase slug, e.g. gpu-box")]


@toolset.capability(scope="admin", title="Add a compute target")
async def compute_add(
    services: Services,
    principal: Principal,
    name: Name,
    kind: Literal["ssh", "ray"] = "ssh",
    host: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._:-]{1,253}$", description="ssh: host name or address")] = None,
    user: Annotated[str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")] = None,
    key_path: Annotated[str | None, Field(description="ssh: private key file (no passphrase), in the workspace or an import root")] = None,
    address: Annotated[str | None, Field(pattern=r"^(ray://)?[A-Za-z0-9._-]{1,253}:[0-9]{1,5}$",
                                         description="ray: the head's host:6379, or ray://host:10001")] = None,
    port: Annotated[int, Field(ge=1, le=65535)] = 22,
    host_key: Annotated[str | None, Field(max_length=16_384, description="A known_hosts or ssh-keyscan line")] = None,
    host_key_fingerprint: Annotated[str | None, Field(pattern=r"^(SHA256:)?[A-Za-z0-9+/]{43}=?$")] = None,
    remote_dir: Annotated[str, Field(max_length=512, description="Its workspace there, from the home folder")] = "forge-remote",
    python: Annotated[str, Field(pattern=r"^[^\s]{1,512}$", description="The interpreter there with forge-mcp")] = "python3",
) -> TargetView:
    """Adds a compute target after checking it. ssh (host, user, key_path): its host key must match
    host_key or host_key_fingerprint (without either, the refusal names the key it presents, to
    check on the host and confirm), the key must log in, python must run there. ray (address):
    this server joins the cluster. A probe (CPUs, RAM, disk, GPUs, Ray nodes, forge-mcp's version)
    is stored. Secrets are never returned. Seconds."""
    return await services.compute.add(
        principal, name, kind=kind, host=host, port=port, user=user, key_path=key_path, host_key=host_key,
        host_key_fingerprint=host_key_fingerprint, remote_dir=remote_dir, python=python, address=address,
    )  # fmt: skip


@toolset.capability(scope="read", title="List compute targets", read_only=True)
async def compute_list(services: Services) -> TargetList:
    """Every compute target with where it is, its host key's fingerprint and its last probe.
    Instant, read-only."""
    return await services.compute.list()


@toolset.capability(scope="train", title="Probe a compute target", read_only=True)
async def compute_probe(services: Services, name: Name) -> TargetView:
    """Connects to the target (an SSH host's pinned key checked) and reports what it has now: OS,
    CPUs, RAM, free disk, GPUs with memory (nvidia-smi), Python, forge-mcp's version (None: not
    installed there); a Ray cluster's nodes and resources. Seconds."""
    return await services.compute.probe(name)


@toolset.capability(scope="admin", title="Remove a compute target", destructive=True)
async def compute_remove(services: Services, principal: Principal, name: Name) -> TargetRemoved:
    """Forgets a compute target (its key file and the host are untouched). Refused while jobs are
    queued or running there. Instant."""
    return await services.compute.remove(principal, name)
