"""Which traces a bulk operation takes (traces_to_dataset, trace_judge): trace_list's filters
as one value, kept in a job's arguments and in a dataset's lineage. Every filter given must
hold, each tag too; whose traces they are is the service's rule, not a filter."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from forge_mcp.errors import InvalidArguments
from forge_mcp.traces.messages import Outcome
from forge_mcp.traces.models import check_slugs
from forge_mcp.traces.repository import TraceFilter


class TraceSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: float | None = Field(None, description="Unix time (s): created at or after")
    until: float | None = Field(None, description="Unix time (s): created before")
    source: str | None = None
    model: str | None = None
    outcome: Outcome | None = None
    thread: str | None = None
    tags: list[str] = Field(default_factory=list, description="Each must be on the trace")

    @classmethod
    def checked(cls, **filters: Any) -> TraceSelection:
        """The filters given (None: not given), or InvalidArguments naming the one at fault."""
        since, until = filters.get("since"), filters.get("until")
        if since is not None and until is not None and since >= until:
            raise InvalidArguments(f"since: {since} is not before until ({until}); both are Unix times in seconds")
        given = {key: value for key, value in filters.items() if value is not None}
        if "tags" in given:
            given["tags"] = check_slugs("tags", given["tags"])
        return cls(**given)

    def given(self) -> dict[str, Any]:
        """Only the filters that were given, as JSON values: for lineage and messages."""
        return self.model_dump(mode="json", exclude_defaults=True)

    def described(self) -> str:
        """The filters given, as `source='chat', tags=['billing']`; empty when none was."""
        return ", ".join(f"{key}={value!r}" for key, value in self.given().items())

    def matching(self) -> str:
        """' that match <the filters>', or nothing when none was given: to follow 'the traces'."""
        return f" that match {self.described()}" if self.given() else ""

    def where(self, owner: str | None, **conditions: Any) -> TraceFilter:
        """As the repository's filter, for `owner`'s traces (None: everyone's), with `conditions` added."""
        return TraceFilter(owner=owner, since=self.since, until=self.until, source=self.source, model=self.model,
                           outcome=self.outcome, thread=self.thread, tags=tuple(self.tags), **conditions)  # fmt: skip
