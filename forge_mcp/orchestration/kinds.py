"""An orchestration kind: declared like a job kind (typed arguments and result), but its
code is a coroutine that runs in the server (`await run(ctx, arguments) -> result`), and
its executor is the server ("server"), which holds no admission slot."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from forge_mcp.errors import ForgeError, InvalidArguments, describe_validation_error
from forge_mcp.jobs.models import Resources

if TYPE_CHECKING:
    from forge_mcp.orchestration.context import OrchestrationContext

A = TypeVar("A", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

SERVER_EXECUTOR = "server"  # the name recorded on an orchestration's row (jobs.executor)


@dataclass(frozen=True)
class OrchestrationKind(Generic[A, R]):
    """One kind of orchestration. The engine treats it as a job kind (the same checks at
    submission, the same result check before SUCCEEDED); `run` is started again from the top
    after a server restart, so it must reach its children through `ctx.start_child(step=…)`,
    which finds a step's existing child instead of starting another."""

    name: str
    arguments: type[A]
    result: type[R]
    run: Callable[[OrchestrationContext, A], Awaitable[R]]
    executor: str = SERVER_EXECUTOR
    # What the job engine reads of every kind: an orchestration needs nothing of its own
    # (its children declare theirs), never checkpoints and is never a service.
    checkpoints: bool = False
    service: bool = False

    def resources(self, arguments: A) -> Resources:
        return Resources()

    def parse_arguments(self, values: Mapping[str, Any]) -> A:
        """The arguments as the kind's model; a mismatch is the caller's error and names the field."""
        try:
            return self.arguments.model_validate(values)
        except ValidationError as exc:
            raise InvalidArguments(describe_validation_error(exc, f"orchestration kind {self.name}", "an argument")) from None

    def parse_result(self, values: Any) -> R:
        try:
            return self.result.model_validate(values)
        except ValidationError as exc:
            message = describe_validation_error(exc, f"orchestration kind {self.name}", "an argument")
            raise ForgeError(f"the orchestration's result does not match its kind's: {message}") from None
