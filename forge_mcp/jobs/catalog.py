"""The catalog: every kind of job this installation runs, in one list (as arq lists its
functions).

An entry names a kind and where its code lives: a module of this package and the name of
the `JobKind` in it, both written here. That makes the catalog an allowlist: what a worker
imports comes from this file, never from a setting or a job row, and a worker imports only
the module of the kind it runs (a training worker does not load the tools, the protocols or
the other domains). The `JobKind` in that module says the rest: its arguments and result
models, its resources, whether it resumes from checkpoints, whether it is a service.

The test kinds (forge_mcp.jobs.testing_kinds) are listed only when the test setting is on
(FORGE_TEST_JOB_KINDS=1), so a production server never offers them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from forge_mcp.errors import NotFound
from forge_mcp.jobs.kinds import JobKind

# The setting's environment variable: a worker inherits the server's environment, so both
# read the same value (a config file does not reach workers; set it in the environment).
TEST_KINDS_ENV = "FORGE_TEST_JOB_KINDS"


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    module: str  # where its code lives, imported only when the kind is needed
    attribute: str  # the JobKind in that module


KINDS: tuple[CatalogEntry, ...] = (
    CatalogEntry("system_benchmark", "forge_mcp.hardware.jobs", "SYSTEM_BENCHMARK"),
    CatalogEntry("dataset_prepare", "forge_mcp.datasets.jobs", "DATASET_PREPARE"),
    CatalogEntry("rag_index", "forge_mcp.rag.jobs", "RAG_INDEX"),
    CatalogEntry("traces_to_dataset", "forge_mcp.flywheel.jobs", "TRACES_TO_DATASET"),
    CatalogEntry("train", "forge_mcp.training.jobs", "TRAIN"),
    CatalogEntry("evaluate", "forge_mcp.models.jobs", "EVALUATE"),
    CatalogEntry("compare", "forge_mcp.models.jobs", "COMPARE"),
    CatalogEntry("export", "forge_mcp.models.jobs", "EXPORT"),
    CatalogEntry("serve", "forge_mcp.serving.jobs", "SERVE"),
    CatalogEntry("generate", "forge_mcp.serving.jobs", "GENERATE"),
)

# Workloads for the engine's own tests: sleep, fail, emit events, hang, spawn a grandchild.
TEST_KINDS: tuple[CatalogEntry, ...] = (
    CatalogEntry("test_sleep", "forge_mcp.jobs.testing_kinds", "SLEEP"),
    CatalogEntry("test_fail", "forge_mcp.jobs.testing_kinds", "FAIL"),
    CatalogEntry("test_events", "forge_mcp.jobs.testing_kinds", "EVENTS"),
    CatalogEntry("test_hang", "forge_mcp.jobs.testing_kinds", "HANG"),
    CatalogEntry("test_spawn", "forge_mcp.jobs.testing_kinds", "SPAWN"),
)


def offers_test_kinds(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get(TEST_KINDS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


class JobCatalog:
    """The kinds on offer; `load` imports a kind's module on first use."""

    def __init__(self, *, test_kinds: bool = False) -> None:
        entries = KINDS + (TEST_KINDS if test_kinds else ())
        self._entries = {entry.name: entry for entry in entries}

    @classmethod
    def for_worker(cls) -> JobCatalog:
        """The catalog a worker looks its kind up in: the server's, test kinds included only
        when the environment it inherited turns them on."""
        return cls(test_kinds=offers_test_kinds())

    @property
    def names(self) -> list[str]:
        return list(self._entries)

    def load(self, name: str) -> JobKind[Any, Any]:
        entry = self._entries.get(name)
        if entry is None:
            raise NotFound(f"job kind {name!r} is not in this installation's catalog")
        kind = getattr(importlib.import_module(entry.module), entry.attribute)
        if not isinstance(kind, JobKind) or kind.name != name:  # a slip in this file, caught at the first use
            raise TypeError(f"catalog entry {name!r}: {entry.module}.{entry.attribute} is not the JobKind {name!r}")
        return kind

    def load_all(self) -> dict[str, JobKind[Any, Any]]:
        """Every kind, for the server: it submits, admits, recovers and publishes them all."""
        return {name: self.load(name) for name in self._entries}
