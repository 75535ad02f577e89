"""The capability registry: a capability is declared once, in tools/<area>.py, and every
surface (MCP, A2A, CLI) is generated from that one declaration.

A capability is an async function whose first parameter is `services` and whose other
parameters are flat, typed and described with `Field`; it returns a pydantic model,
and its docstring is the prompt the calling agent reads. Arguments are validated here,
once, with the same rules and the same messages for every surface.
"""

from __future__ import annotations

import inspect
import logging
import time
import typing
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from forge_mcp.errors import ForgeError, InternalError, InvalidArguments, UnknownCapability, describe_validation_error
from forge_mcp.security.principal import Principal, Scope

if TYPE_CHECKING:
    from forge_mcp.metrics import Metrics
    from forge_mcp.services import Services

log = logging.getLogger("forge_mcp.capabilities")

MAX_DESCRIPTION_CHARS = 1200
CapabilityFn = Callable[..., Awaitable[BaseModel]]


class ProgressReporter(Protocol):
    """How a capability reports progress while it runs; each surface supplies its own
    (MCP progress notifications, A2A status updates, CLI lines on stderr)."""

    async def __call__(self, done: float, total: float | None = None, message: str | None = None) -> None: ...


async def no_progress(done: float, total: float | None = None, message: str | None = None) -> None:
    return None


class Confirm(Protocol):
    """How a capability asks the person behind the client to confirm a destructive step
    (DESIGN §7): True to go on, False when they declined or cancelled, None when this surface
    or client cannot ask (the tool's destructive annotation is then the safeguard). MCP asks
    through elicitation when the client declared it; A2A and the CLI cannot ask. Ask once per
    call, before any side effect: on MCP 2026-07-28 the question rides the tool's result
    (input_required) and the whole call runs again with the answer."""

    async def __call__(self, message: str) -> bool | None: ...


async def cannot_confirm(message: str) -> bool | None:
    return None


class ImageAttachment(BaseModel):
    """An image inside a capability's result (a chart). MCP sends it as image content,
    A2A as a file part; the JSON result keeps only a short description of it."""

    mime_type: str = "image/png"
    data_base64: str
    description: str


def split_images(model: BaseModel) -> tuple[dict[str, Any], list[ImageAttachment]]:
    """The result as JSON with each top-level image's data replaced by a placeholder, and the images."""
    data = model.model_dump(mode="json")
    images = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, ImageAttachment):
            images.append(value)
            data[name] = {**data[name], "data_base64": f"<{value.mime_type}, sent as an attachment>"}
    return data, images


# Parameters of these types are filled in by the runner, not by the caller, and are not in the schema.
INJECTED_TYPES: dict[Any, str] = {Principal: "principal", ProgressReporter: "progress", Confirm: "confirm"}


@dataclass(frozen=True)
class Capability:
    name: str
    toolset: str
    title: str
    description: str
    scope: Scope
    fn: CapabilityFn
    parameters: tuple[inspect.Parameter, ...]  # the caller's: without `services` and injected ones
    injected: dict[str, str]  # parameter name -> "principal" | "progress" | "confirm"
    arguments: type[BaseModel]
    output: type[BaseModel]
    read_only: bool
    destructive: bool
    idempotent: bool
    long_running: bool
    # The kind of job it starts, for a tool that returns a JobHandle: where that job's final
    # result is described (a workflow step's result is its job's, workflows/validation.py).
    job_kind: str | None = None

    def validate(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise InvalidArguments(f"{self.name}: arguments must be a JSON object of named arguments")
        try:
            model = self.arguments.model_validate(dict(raw))
        except ValidationError as exc:
            raise InvalidArguments(f"invalid arguments for {self.name}: {describe_validation_error(exc)}") from None
        return {name: getattr(model, name) for name in type(model).model_fields}


ResourceFn = Callable[..., Awaitable[BaseModel]]


@dataclass(frozen=True)
class ResourceSpec:
    """A read-only view of state at a `forge://` URI (a template when it has {params})."""

    uri: str
    name: str
    description: str
    scope: Scope
    fn: ResourceFn
    wants_principal: bool = False  # the reader's principal is passed as `principal` (whose jobs it may see)


@dataclass
class Toolset:
    """A named group of capabilities (and the resources that mirror their state);
    one per tools/<area>.py module."""

    name: str
    description: str
    capabilities: list[Capability] = field(default_factory=list)
    resources: list[ResourceSpec] = field(default_factory=list)

    def resource(self, uri: str, *, name: str, scope: Scope = "read") -> Callable[[ResourceFn], ResourceFn]:
        def register(fn: ResourceFn) -> ResourceFn:
            description = inspect.cleandoc(fn.__doc__ or "")
            wants_principal = "principal" in inspect.signature(fn).parameters
            self.resources.append(ResourceSpec(uri=uri, name=name, description=description, scope=scope, fn=fn,
                                               wants_principal=wants_principal))  # fmt: skip
            return fn

        return register

    def capability(
        self,
        *,
        scope: Scope,
        title: str,
        read_only: bool = False,
        destructive: bool = False,
        idempotent: bool = False,
        long_running: bool = False,
        job_kind: str | None = None,
    ) -> Callable[[CapabilityFn], CapabilityFn]:
        def register(fn: CapabilityFn) -> CapabilityFn:
            self.capabilities.append(
                _build_capability(
                    fn,
                    toolset=self.name,
                    scope=scope,
                    title=title,
                    read_only=read_only,
                    destructive=destructive,
                    idempotent=idempotent or read_only,
                    long_running=long_running,
                    job_kind=job_kind,
                )
            )
            return fn

        return register


def _build_capability(fn: CapabilityFn, *, toolset: str, **flags: Any) -> Capability:
    name = fn.__name__
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"capability {name} must be an async function")
    description = _unwrap(inspect.cleandoc(fn.__doc__ or ""))
    if not description or len(description) > MAX_DESCRIPTION_CHARS:
        raise TypeError(f"capability {name} needs a docstring of 1..{MAX_DESCRIPTION_CHARS} characters")
    hints = typing.get_type_hints(fn, include_extras=True)
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    if not params or params[0].name != "services":
        raise TypeError(f"capability {name}: the first parameter must be `services`")
    output = hints.get("return")
    if not (inspect.isclass(output) and issubclass(output, BaseModel)):
        raise TypeError(f"capability {name} must declare a pydantic model as its return type")
    resolved: list[inspect.Parameter] = []
    fields: dict[str, Any] = {}
    injected: dict[str, str] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"capability {name}: *args/**kwargs are not allowed; declare every argument")
        annotation = hints[param.name]
        if annotation in INJECTED_TYPES:
            injected[param.name] = INJECTED_TYPES[annotation]
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, default)
        resolved.append(param.replace(annotation=annotation, kind=inspect.Parameter.KEYWORD_ONLY))
    arguments = create_model(  # type: ignore[call-overload]
        f"{name}_arguments", __config__=ConfigDict(extra="forbid", strict=False), **fields
    )
    return Capability(
        name=name,
        toolset=toolset,
        description=description,
        fn=fn,
        parameters=tuple(resolved),
        injected=injected,
        arguments=arguments,
        output=output,
        **flags,
    )


def _unwrap(doc: str) -> str:
    """Join hard-wrapped docstring lines; keep blank-line paragraph breaks."""
    return "\n\n".join(" ".join(p.split()) for p in doc.split("\n\n") if p.strip())


class CapabilityRegistry:
    """The enabled capabilities, by name. Unknown toolset names are refused up front."""

    def __init__(self, toolsets: Sequence[Toolset], enabled: Sequence[str] | None = None) -> None:
        known = {t.name for t in toolsets}
        if enabled is not None:
            unknown = sorted(set(enabled) - known)
            if unknown:
                raise InvalidArguments(
                    f"toolsets: unknown toolset(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
                )
        self.toolsets = [t for t in toolsets if enabled is None or t.name in enabled]
        self._by_name: dict[str, Capability] = {}
        for toolset in self.toolsets:
            for cap in toolset.capabilities:
                if cap.name in self._by_name:
                    raise TypeError(f"capability {cap.name} is declared twice")
                self._by_name[cap.name] = cap

    def __iter__(self) -> Iterator[Capability]:
        return iter(self._by_name.values())

    def __len__(self) -> int:
        return len(self._by_name)

    def find(self, name: str) -> Capability | None:
        return self._by_name.get(name)

    def get(self, name: object) -> Capability:
        cap = self._by_name.get(name) if isinstance(name, str) else None
        if cap is None:
            shown = name if isinstance(name, str) and len(name) <= 64 else "(unprintable)"
            raise UnknownCapability(
                f"unknown tool {shown!r}; available tools: {', '.join(self._by_name)}. "
                "Call forge_overview to see what this server can do."
            )
        return cap


class CapabilityRunner:
    """Runs a capability for a principal: scope check, validation, call, error mapping, metrics."""

    def __init__(self, registry: CapabilityRegistry, services: Services, metrics: Metrics) -> None:
        self.registry = registry
        self._services = services
        self._metrics = metrics

    def validate(self, name: str, arguments: Mapping[str, Any] | None, *, surface: str) -> dict[str, Any]:
        """Check a call without running it; a refusal is counted like a failed call. Protocol
        adapters call this first so that a transport's own validator never sees bad input."""
        try:
            return self.registry.get(name).validate(arguments)
        except ForgeError as exc:
            self._count(name, surface, exc.code, 0.0)
            raise

    async def run(
        self,
        name: str,
        arguments: Mapping[str, Any] | None,
        principal: Principal,
        *,
        surface: str,
        progress: ProgressReporter = no_progress,
        confirm: Confirm = cannot_confirm,
        validated: bool = False,
    ) -> BaseModel:
        """With `validated`, `arguments` are what `validate` returned for this tool (an adapter
        that checked the call before its transport did) and are not validated again."""
        started = time.perf_counter()
        outcome = "ok"
        try:
            cap = self.registry.get(name)
            principal.require(cap.scope, f"the tool {cap.name}")
            values = dict(arguments or {}) if validated else cap.validate(arguments)
            available = {"principal": principal, "progress": progress, "confirm": confirm}
            values.update({param: available[what] for param, what in cap.injected.items()})
            return await _guarded(cap.name, cap.fn(self._services, **values))
        except ForgeError as exc:
            outcome = exc.code
            raise
        finally:
            self._count(name, surface, outcome, time.perf_counter() - started)

    def _count(self, name: str, surface: str, outcome: str, seconds: float) -> None:
        label = name if self.registry.find(name) else "unknown"
        self._metrics.count_tool_call(label, surface, outcome, seconds)

    async def read(self, spec: ResourceSpec, principal: Principal, params: Mapping[str, str]) -> BaseModel:
        principal.require(spec.scope, f"the resource {spec.uri}")
        extra = {"principal": principal} if spec.wants_principal else {}
        return await _guarded(spec.uri, spec.fn(self._services, **params, **extra))


async def _guarded(what: str, call: Awaitable[BaseModel]) -> BaseModel:
    """Await `call`; a ForgeError passes through, anything else becomes InternalError
    with its traceback logged under the same reference."""
    try:
        return await call
    except ForgeError:
        raise
    except Exception:
        ref = uuid.uuid4().hex[:12]
        log.exception("%s failed unexpectedly (ref %s)", what, ref)
        raise InternalError(ref) from None
