"""Compute targets as stored, and what the compute tools return."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

TargetKind = Literal["ssh", "ray"]
# A job tool's `compute` argument: where its job runs.
ComputeTarget = Annotated[str | None, Field(max_length=63, description="A compute target to run it on (compute_list); default here")]


@dataclass(frozen=True)
class SshConfig:
    """How to reach an SSH host. The private key stays where it is (a workspace path); the
    host key is pinned: every connection checks it, none adds it."""

    host: str
    port: int
    user: str
    key_path: str  # workspace-relative, or absolute inside an import root
    host_key: str  # "<type> <base64>", as in a known_hosts line
    host_key_fingerprint: str  # SHA256:…
    remote_dir: str  # the worker's workspace there: relative to the user's home, or absolute
    python: str  # the interpreter there that has forge-mcp

    def known_hosts_name(self) -> str:
        """The host as known_hosts names it: [host]:port unless the port is 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class RayConfig:
    address: str


@dataclass(frozen=True)
class StoredTarget:
    name: str
    kind: TargetKind
    ssh: SshConfig | None
    ray: RayConfig | None
    probe: dict[str, Any] | None
    probed_at: float | None
    created_at: float
    principal: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> StoredTarget:
        config = json.loads(row["config"])
        return cls(
            name=row["name"],
            kind=row["kind"],
            ssh=SshConfig(**config) if row["kind"] == "ssh" else None,
            ray=RayConfig(**config) if row["kind"] == "ray" else None,
            probe=json.loads(row["probe"]) if row["probe"] else None,
            probed_at=row["probed_at"],
            created_at=row["created_at"],
            principal=row["principal"],
        )


class GpuInfo(BaseModel):
    index: int
    name: str
    memory_gb: float
    compute_capability: str | None = None


class RayNode(BaseModel):
    node_id: str
    address: str | None = None
    alive: bool
    cpus: float
    gpus: float
    memory_gb: float = Field(description="Ray's memory resource on the node")


class ProbeResult(BaseModel):
    """What a target has, as its own tools report it."""

    os: str | None = None
    hostname: str | None = None
    cpus: int | None = None
    ram_gb: float | None = None
    disk_free_gb: float | None = Field(None, description="Free space where the target's workspace is")
    gpus: list[GpuInfo] = Field(default_factory=list, description="From nvidia-smi; empty without one")
    python: str | None = None
    forge_mcp: str | None = Field(None, description="forge-mcp's version there; None: not installed for that python")
    ray: str | None = Field(None, description="A Ray cluster's Ray version")
    nodes: list[RayNode] | None = Field(None, description="A Ray cluster's nodes and their resources")
    gpu_count: int | None = Field(None, description="A Ray cluster's GPUs, all alive nodes together")


class TargetView(BaseModel):
    """A compute target as a caller sees it: never a key, only where it is and the host key's fingerprint."""

    name: str
    kind: TargetKind
    host: str | None = None
    port: int | None = None
    user: str | None = None
    key_path: str | None = None
    host_key_fingerprint: str | None = None
    remote_dir: str | None = None
    python: str | None = None
    address: str | None = Field(None, description="A Ray cluster's address")
    probe: ProbeResult | None = Field(None, description="The last compute_probe")
    probed_at: float | None = None
    created_at: float

    @classmethod
    def of(cls, target: StoredTarget) -> TargetView:
        ssh = target.ssh
        return cls(
            name=target.name,
            kind=target.kind,
            host=ssh.host if ssh else None,
            port=ssh.port if ssh else None,
            user=ssh.user if ssh else None,
            key_path=ssh.key_path if ssh else None,
            host_key_fingerprint=ssh.host_key_fingerprint if ssh else None,
            remote_dir=ssh.remote_dir if ssh else None,
            python=ssh.python if ssh else None,
            address=target.ray.address if target.ray else None,
            probe=ProbeResult.model_validate(target.probe) if target.probe else None,
            probed_at=target.probed_at,
            created_at=target.created_at,
        )


class TargetList(BaseModel):
    targets: list[TargetView]


class TargetRemoved(BaseModel):
    name: str
    removed: bool
