"""Publication: what runs in the server once a worker reported success, before the job is
SUCCEEDED. The worker's result is checked against its kind's result model first (a result
that does not match fails the job instead of being stored); then the kind's publish step,
if it has one, makes its output visible — a dataset version, an export, metrics on a model
version — exactly when, and only if, the job succeeds.

Publish steps are small classes beside their domain (forge_mcp/<area>/publish.py), built in
the composition root with the repositories they use; each takes the job, its arguments and
its result, typed by the kind's models, and returns the result clients see.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel

from forge_mcp.jobs.kinds import JobKind
from forge_mcp.jobs.models import Job

# What the engine calls with a worker's result (Publisher.publish): the result to store.
Publish = Callable[[Job, dict[str, Any]], Awaitable[dict[str, Any]]]
# (job, arguments, result) -> the result clients see; arguments and result are the kind's models.
PublishStep = Callable[[Job, Any, Any], Awaitable[BaseModel]]


class Publisher:
    def __init__(self, kinds: Mapping[str, JobKind[Any, Any]], steps: Mapping[str, PublishStep]) -> None:
        unknown = sorted(set(steps) - set(kinds))
        if unknown:
            raise ValueError(f"publish steps for kinds that are not in the catalog: {', '.join(unknown)}")
        self._kinds = kinds
        self._steps = steps

    async def publish(self, job: Job, result: dict[str, Any]) -> dict[str, Any]:
        """The result to store. Raises ForgeError when the result does not match its kind's
        model or the publish step refuses (the engine fails the job with the reason)."""
        kind = self._kinds.get(job.kind)
        if kind is None:  # a job of a kind this server no longer offers: stored as the worker said
            return result
        checked = kind.parse_result(result)
        step = self._steps.get(job.kind)
        if step is not None:
            checked = await step(job, kind.parse_arguments(job.arguments), checked)
        return checked.model_dump(mode="json")

    def result_models(self) -> dict[str, type[BaseModel]]:
        """Each kind's stored result, as clients see it: its publish step's model where it has one
        (a prepared dataset's names the version it became), else the kind's result model."""
        out = {}
        for name, kind in self._kinds.items():
            step = self._steps.get(name)
            hint = typing.get_type_hints(type(step).__call__).get("return") if step is not None else None
            out[name] = hint if isinstance(hint, type) and issubclass(hint, BaseModel) else kind.result
        return out
