"""A job kind (the API a job's code sees inside its worker is forge_mcp.jobs.context).

A job kind is typed: its arguments and its result are pydantic models, and its code runs
in a worker as `run(job, arguments) -> result`. Kinds are listed in one allowlist, the
catalog (forge_mcp.jobs.catalog); a job's stored arguments are JSON values for the kind's
arguments model, never a module, class or code to run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from forge_mcp.errors import ForgeError, InvalidArguments, describe_validation_error
from forge_mcp.jobs.context import JobContext
from forge_mcp.jobs.models import Resources

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


def no_resources(arguments: BaseModel) -> Resources:
    return Resources()


@dataclass(frozen=True)
class JobKind(Generic[A, R]):
    """One kind of job: what it takes, what it returns, what it needs, and the code that
    runs it in a worker (`run(job, arguments)`). Declared beside its domain
    (forge_mcp/<area>/jobs.py) and listed in forge_mcp.jobs.catalog."""

    name: str
    arguments: type[A]
    result: type[R]
    run: Callable[[JobContext, A], R]
    resources: Callable[[A], Resources] = no_resources  # what a job needs, for admission
    checkpoints: bool = False  # whether a retry resumes from runs/<job>/checkpoints
    # Runs until stopped (a model server): admitted in its own slots, and never retried,
    # because a service that crashed must show as FAILED, not quietly restart elsewhere.
    service: bool = False
    # The executor its jobs run on unless the caller names one; None: the engine's default.
    # Orchestration kinds (forge_mcp/orchestration/kinds.py) say "server".
    executor: str | None = None
    # On this machine, its job may take a warm worker: one started before it, torch and the HF
    # stack imported (jobs/executors/warm_pool.py). For kinds whose code imports them.
    warm: bool = False

    def parse_arguments(self, values: Mapping[str, Any]) -> A:
        """The arguments as the kind's model; a mismatch is the caller's error and names the field."""
        try:
            return self.arguments.model_validate(values)
        except ValidationError as exc:
            raise InvalidArguments(_describe(exc, f"job kind {self.name}")) from None

    def parse_result(self, values: Any) -> R:
        """A worker's result as the kind's model, before anything stores or publishes it."""
        try:
            return self.result.model_validate(values)
        except ValidationError as exc:
            raise ForgeError(f"the job's result does not match its kind's: {_describe(exc, f'job kind {self.name}')}") from None


def _describe(exc: ValidationError, container: str) -> str:
    return describe_validation_error(exc, container, "an argument")
