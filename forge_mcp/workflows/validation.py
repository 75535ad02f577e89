"""Validation of a workflow document against the tools it calls, for one caller: every problem
at once, each naming the step and the field, with the execution plan and a Mermaid drawing.

Checked: each step's tool exists, may be a step, and the caller's scopes allow it; its
arguments are the tool's (none unknown, every required one given, literal values of the
right type, referenced values of a compatible type where the schemas say); `needs` name
steps; there is no cycle; each reference names an input or a step, and a field that step's
result has (a tool that starts a job: the job's final result, per the kind's result model);
each condition parses; outputs refer to what exists."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from forge_mcp.capabilities import Capability, CapabilityRegistry
from forge_mcp.errors import InvalidArguments
from forge_mcp.jobs.models import JobHandle
from forge_mcp.security.principal import Principal
from forge_mcp.workflows.conditions import Condition
from forge_mcp.workflows.document import WorkflowDocument
from forge_mcp.workflows.graph import StepGraph
from forge_mcp.workflows.references import INPUTS, Path, malformed, paths_in, whole_reference

# Tools that cannot be a step: a workflow does not start workflows (no recursion to bound).
NOT_STEPS = frozenset({"workflow_run"})
# Arguments the workflow sets itself on every step whose tool takes them.
SET_BY_WORKFLOW = frozenset({"idempotency_key"})
JSON_TYPES = {"string", "integer", "number", "boolean", "object", "array", "null"}


class Problem(BaseModel):
    step: str | None = Field(description="The step it is in; null for the workflow's own fields")
    field: str = Field(description="Where: tool, needs, when, arguments.<name>, inputs.<name>, outputs.<name>")
    message: str


@dataclass
class ResultSchemas:
    """The JSON schema of each step's result, for checking references into it."""

    job_results: Mapping[str, type[BaseModel]]  # job kind -> its result model
    _cache: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    def of(self, cap: Capability) -> dict[str, Any] | None:
        if cap.name not in self._cache:
            self._cache[cap.name] = self._schema(cap)
        return self._cache[cap.name]

    def _schema(self, cap: Capability) -> dict[str, Any] | None:
        if not issubclass(cap.output, JobHandle):
            return cap.output.model_json_schema()
        model = self.job_results.get(cap.job_kind or "")
        if model is None:
            return None  # a job whose result is not described: references into it are checked when it runs
        schema = model.model_json_schema()
        schema.setdefault("properties", {})["job_id"] = {"type": "string"}
        return schema


@dataclass
class Validation:
    problems: list[Problem]
    levels: list[list[str]]
    mermaid: str


def step_is_job(cap: Capability) -> bool:
    """A step whose tool starts a job and returns its handle: the step's result is the job's final one."""
    return issubclass(cap.output, JobHandle)


def validate(
    document: WorkflowDocument,
    registry: CapabilityRegistry,
    principal: Principal,
    schemas: ResultSchemas,
    inputs: Mapping[str, Any] | None = None,
) -> Validation:
    graph = StepGraph.of(document)
    problems = list(_inputs(document, inputs))
    tools = {name: registry.find(step.tool) for name, step in document.steps.items()}
    for name, step in document.steps.items():
        cap = tools[name]
        problems += _tool(name, step.tool, cap, registry, principal)
        for need in step.needs:
            if need not in document.steps:
                problems.append(Problem(step=name, field="needs", message=f"{need!r} is not a step of this workflow"))
            elif need == name:
                problems.append(Problem(step=name, field="needs", message="a step cannot need itself"))
        if cap is not None and cap.name not in NOT_STEPS:
            problems += _arguments(name, step.arguments, cap, document, tools, schemas)
        for where, path in paths_in(step.arguments):
            problems += _reference(name, f"arguments.{where}", path, document, tools, schemas)
        for text in malformed(step.arguments):
            problems.append(Problem(step=name, field="arguments", message=f"{text!r}: write a reference as "
                                    "${inputs.<name>} or ${<step>.<field>}"))  # fmt: skip
        if step.when is not None:
            problems += _condition(name, step.when, document, tools, schemas)
    for output, value in document.outputs.items():
        for _, path in paths_in(value):
            problems += _reference(None, f"outputs.{output}", path, document, tools, schemas)
    cycle = graph.cycle()
    if cycle:
        problems.append(Problem(step=cycle[0], field="needs", message="a cycle: " + " → ".join(cycle)
                                + "; a step cannot wait, directly or not, on itself"))  # fmt: skip
    levels = [] if cycle else graph.levels()
    mermaid = graph.mermaid({name: step.tool for name, step in document.steps.items()})
    return Validation(problems, levels, mermaid)


def _inputs(document: WorkflowDocument, given: Mapping[str, Any] | None) -> Iterator[Problem]:
    for name, spec in document.inputs.items():
        if spec.default is not None and not spec.accepts(spec.default):
            yield Problem(step=None, field=f"inputs.{name}", message=f"the default is not of type {spec.type}")
    if given is None:
        return
    for name, value in given.items():
        spec = document.inputs.get(name)
        if spec is None:
            known = ", ".join(document.inputs) or "none"
            yield Problem(step=None, field=f"inputs.{name}", message=f"not an input of this workflow (its inputs: {known})")
        elif not spec.accepts(value):
            yield Problem(step=None, field=f"inputs.{name}", message=f"expected {spec.type}, got {_json_type(value)}")
    for name, spec in document.inputs.items():
        if spec.required and spec.default is None and name not in given:
            yield Problem(step=None, field=f"inputs.{name}", message="required: give it in inputs")


def _tool(step: str, tool: str, cap: Capability | None, registry: CapabilityRegistry, principal: Principal) -> list[Problem]:
    if cap is None:
        return [Problem(step=step, field="tool", message=f"unknown tool {tool!r}; forge_overview lists this server's "
                        "tools (a toolset left out with --toolsets is unknown here too)")]  # fmt: skip
    if cap.name in NOT_STEPS:
        return [Problem(step=step, field="tool", message=f"{tool} cannot be a step: workflows do not start workflows")]
    if not principal.allows(cap.scope):
        return [Problem(step=step, field="tool", message=f"{tool} needs the '{cap.scope}' scope and this API key does not "
                        f"have it; run the workflow with a key that has it")]  # fmt: skip
    return []


def _arguments(step: str, arguments: dict[str, Any], cap: Capability, document: WorkflowDocument,
               tools: Mapping[str, Capability | None], schemas: ResultSchemas) -> list[Problem]:  # fmt: skip
    problems = []
    declared = cap.arguments.model_fields
    for name in arguments:
        if name in SET_BY_WORKFLOW and name in declared:
            problems.append(Problem(step=step, field=f"arguments.{name}", message="set by the workflow itself (one per "
                                    "step, so a restarted run finds its jobs); leave it out"))  # fmt: skip
    literal = {k: v for k, v in arguments.items() if not any(True for _ in paths_in(v)) and k not in SET_BY_WORKFLOW}
    referenced = {k for k in arguments if k not in literal}
    try:
        cap.arguments.model_validate(literal)
    except ValidationError as exc:
        for err in exc.errors(include_url=False, include_input=False):
            top = str(err["loc"][0]) if err["loc"] else "arguments"
            where = "arguments." + ".".join(str(p) for p in err["loc"])
            if err["type"] == "missing":
                if top not in referenced:
                    problems.append(Problem(step=step, field=where, message=f"required by {cap.name}; give it"))
            elif err["type"] == "extra_forbidden":
                problems.append(Problem(step=step, field=where, message=f"not an argument of {cap.name} (its arguments: "
                                        f"{', '.join(n for n in declared if n not in SET_BY_WORKFLOW)})"))  # fmt: skip
            elif top in literal:
                problems.append(Problem(step=step, field=where, message=err["msg"]))
    properties = cap.arguments.model_json_schema().get("properties", {})
    for name in referenced:
        path = whole_reference(arguments[name])
        if path is None or name not in properties:
            continue
        source = _referenced_schema(path, document, tools, schemas)
        accepted, given = _types(properties[name]), _types(source) if source is not None else set()
        if accepted and given and not _compatible(given, accepted):
            problems.append(Problem(step=step, field=f"arguments.{name}", message=f"{cap.name} takes "
                                    f"{' or '.join(sorted(accepted))} here; ${{{path.text}}} is {' or '.join(sorted(given))}"))  # fmt: skip
    return problems


def _condition(step: str, when: str, document: WorkflowDocument, tools: Mapping[str, Capability | None],
               schemas: ResultSchemas) -> list[Problem]:  # fmt: skip
    try:
        condition = Condition.parse(when)
    except InvalidArguments as exc:
        return [Problem(step=step, field="when", message=f"does not parse: {exc.message}")]
    return [p for path in condition.references() for p in _reference(step, "when", path, document, tools, schemas)]


def _reference(step: str | None, where: str, path: Path, document: WorkflowDocument,
               tools: Mapping[str, Capability | None], schemas: ResultSchemas) -> list[Problem]:  # fmt: skip
    if path.head == INPUTS:
        if not path.parts or not isinstance(path.parts[0], str):
            return [Problem(step=step, field=where, message=f"${{{path.text}}}: name an input, as ${{inputs.<name>}}")]
        if path.parts[0] not in document.inputs:
            known = ", ".join(document.inputs) or "none declared"
            return [Problem(step=step, field=where, message=f"${{{path.text}}}: no input {path.parts[0]!r} (inputs: {known})")]
        return []
    if path.head not in document.steps:
        return [Problem(step=step, field=where, message=f"${{{path.text}}}: {path.head!r} is not a step or 'inputs'")]
    if path.head == step:
        return [Problem(step=step, field=where, message=f"${{{path.text}}}: a step cannot refer to its own result")]
    cap = tools.get(path.head)
    schema = schemas.of(cap) if cap is not None else None
    if schema is None:
        return []
    missing = _missing_field(schema, path)
    if missing is None:
        return []
    return [Problem(step=step, field=where, message=f"${{{path.text}}}: {missing}")]


def _referenced_schema(path: Path, document: WorkflowDocument, tools: Mapping[str, Capability | None],
                       schemas: ResultSchemas) -> dict[str, Any] | None:  # fmt: skip
    if path.head == INPUTS:
        spec = document.inputs.get(str(path.parts[0])) if path.parts else None
        return {"type": spec.type} if spec is not None and len(path.parts) == 1 else None
    cap = tools.get(path.head)
    root = schemas.of(cap) if cap is not None else None
    if root is None:
        return None
    node: dict[str, Any] | None = root
    for part in path.parts:
        node = _child(root, node, part) if node is not None else None
    return node


def _missing_field(root: dict[str, Any], path: Path) -> str | None:
    """Why `path` is not in the result described by `root`, or None when it is (or cannot be told)."""
    node: dict[str, Any] | None = root
    walked = path.head
    for part in path.parts:
        if node is None:
            return None
        child = _child(root, node, part)
        if child is None and _knows_children(root, node):
            if isinstance(part, int):
                return f"{walked} is not a list"
            fields = sorted(_properties(root, node))
            return f"{walked}'s result has no field {part!r}" + (f" (its fields: {', '.join(fields)})" if fields else "")
        node = child
        walked += f"[{part}]" if isinstance(part, int) else f".{part}"
    return None


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = root.get("$defs", {}).get(name, {})
    return node


def _branches(root: dict[str, Any], node: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(root, node)
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        return [b for option in options for b in _branches(root, option)]
    return [node]


def _properties(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for branch in _branches(root, node):
        out.update(branch.get("properties", {}))
    return out


def _knows_children(root: dict[str, Any], node: dict[str, Any]) -> bool:
    """Whether the schema says exactly what is inside (not an open mapping or an untyped value)."""
    for branch in _branches(root, node):
        if branch.get("type") not in ("object", "array", "null", "string", "integer", "number", "boolean"):
            return False
        if branch.get("type") == "object" and (branch.get("additionalProperties") not in (None, False)
                                               or "properties" not in branch):  # fmt: skip
            return False
    return True


def _child(root: dict[str, Any], node: dict[str, Any], part: str | int) -> dict[str, Any] | None:
    for branch in _branches(root, node):
        if isinstance(part, int) and branch.get("type") == "array":
            return _resolve(root, branch.get("items", {}))
        if isinstance(part, str) and part in branch.get("properties", {}):
            return _resolve(root, branch["properties"][part])
        extra = branch.get("additionalProperties")
        if isinstance(part, str) and isinstance(extra, dict):
            return _resolve(root, extra)
    return None


def _types(schema: dict[str, Any] | None) -> set[str]:
    """The JSON types a schema allows; empty when it allows anything."""
    if not schema:
        return set()
    found: set[str] = set()
    for branch in [schema, *schema.get("anyOf", []), *schema.get("oneOf", [])]:
        kind = branch.get("type")
        if isinstance(kind, str) and kind in JSON_TYPES:
            found.add(kind)
        elif isinstance(kind, list):
            found |= {k for k in kind if k in JSON_TYPES}
        elif branch is schema and ("anyOf" in schema or "oneOf" in schema):
            continue
        elif branch is not schema and "type" not in branch:
            return set()
    return found


def _compatible(given: set[str], accepted: set[str]) -> bool:
    widened = set(accepted) | ({"integer"} if "number" in accepted else set())
    return bool((given - {"null"}) & widened) or given == {"null"} and "null" in accepted


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", dict: "object", list: "array"}.get(type(value), "null")
