"""The one error hierarchy. Every message is written to be shown to an LLM: it names
the field or thing at fault and says how to fix it, and never carries a traceback or
a host path. Anything that is not a ForgeError is a bug and surfaces as InternalError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class ForgeError(Exception):
    """Base class; `code` is a stable machine-readable name for the failure class."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArguments(ForgeError):
    code = "invalid_arguments"


class UnknownCapability(ForgeError):
    code = "unknown_tool"


class NotFound(ForgeError):
    code = "not_found"


class Conflict(ForgeError):
    code = "conflict"


class TargetUnavailable(ForgeError):
    """A compute target could not be reached or refused us; the message says why and what to do."""

    code = "target_unavailable"


class PathRefused(ForgeError):
    code = "path_refused"


class Unauthenticated(ForgeError):
    code = "unauthenticated"


class Forbidden(ForgeError):
    code = "forbidden"


class MissingExtra(ForgeError):
    """An optional dependency is not installed; the message names the extra to install."""

    code = "missing_extra"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(f"{feature} needs the optional extra '{extra}': pip install 'forge-mcp[{extra}]'")
        self.extra = extra


class ConfigError(ForgeError):
    code = "config_error"


class InputRequired(ForgeError):
    """Not a failure: the surface must put `message` to its client and run the call again
    with the answer (MCP 2026-07-28 input_required). Raised and caught by that surface."""

    code = "input_required"


class InternalError(ForgeError):
    """An unexpected exception. The detail stays in the server log under `ref`."""

    code = "internal_error"

    def __init__(self, ref: str) -> None:
        super().__init__(f"internal error (ref {ref}); the server log has the details")
        self.ref = ref


def describe_validation_error(exc: ValidationError, container: str = "this tool", noun: str = "an argument") -> str:
    """'field: problem' for each error, without echoing the (untrusted, maybe huge) input."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "extra_forbidden":
            parts.append(f"'{where}' is not {noun} of {container}; remove it")
        elif err["type"] == "missing":
            parts.append(f"'{where}' is required")
        else:
            parts.append(f"'{where}': {err['msg']}")
    return "; ".join(parts)
