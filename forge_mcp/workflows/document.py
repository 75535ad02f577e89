"""A workflow document: data, never code. A name, typed inputs with defaults, steps (each one
tool call with its arguments, what it needs, when it runs, retries, a timeout and what a
failure does) and named outputs.

    name: nightly
    inputs:
      data: {type: string, default: examples/quick-answers.jsonl}
    steps:
      import:
        tool: dataset_import
        arguments: {path: "${inputs.data}", name: quick}
      prepare:
        tool: dataset_prepare
        arguments: {dataset: "${import.reference}"}
    outputs:
      dataset: "${prepare.dataset}"

Parsing checks the shape only; whether the tools, references and conditions make sense is
validation's job (validation.py), which reports every problem at once."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from forge_mcp.errors import InvalidArguments, describe_validation_error

STEP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_NAMES = frozenset({"inputs", "and", "or", "not", "true", "false", "null"})
MAX_STEPS = 200
MAX_DOCUMENT_BYTES = 256_000
InputType = Literal["string", "integer", "number", "boolean", "object", "array"]
PYTHON_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float),
                                             "boolean": (bool,), "object": (dict,), "array": (list,)}  # fmt: skip


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: InputType = "string"
    default: Any = None
    description: str | None = Field(None, max_length=500)
    required: bool = Field(False, description="With no default: a run must give it")

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) and self.type in ("integer", "number"):
            return False
        return isinstance(value, PYTHON_TYPES[self.type])


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)
    needs: list[str] = Field(default_factory=list, description="Steps that must end first (references imply them too)")
    when: str | None = Field(None, max_length=2000, description="A condition; false: the step and its dependents are skipped")
    retries: int = Field(0, ge=0, le=10)
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    on_failure: Literal["stop", "continue"] = "stop"
    description: str | None = Field(None, max_length=500)

    @field_validator("needs", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class WorkflowDocument(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str | None = Field(None, max_length=2000)
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    steps: dict[str, StepSpec] = Field(min_length=1, max_length=MAX_STEPS)
    outputs: dict[str, Any] = Field(default_factory=dict, description="Named values: references to inputs or step results")

    @field_validator("steps", mode="after")
    @classmethod
    def _step_names(cls, steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
        for name in steps:
            if not STEP_NAME.match(name) or name in RESERVED_NAMES:
                raise ValueError(f"step name {name!r}: use lowercase letters, digits and '_', starting with a letter "
                                 f"(not one of {', '.join(sorted(RESERVED_NAMES))})")  # fmt: skip
        return steps


def parse_document(source: str | dict[str, Any], origin: str = "the workflow") -> WorkflowDocument:
    """A document from YAML or JSON text, or from its already parsed form. Every shape problem
    is reported at once, each with where it is."""
    if isinstance(source, str):
        if len(source.encode()) > MAX_DOCUMENT_BYTES:
            raise InvalidArguments(f"{origin}: larger than {MAX_DOCUMENT_BYTES // 1000} kB")
        source = _load_text(source, origin)
    if not isinstance(source, dict):
        raise InvalidArguments(f"{origin}: a workflow is a mapping with name, inputs, steps and outputs")
    try:
        return WorkflowDocument.model_validate(source)
    except ValidationError as exc:
        raise InvalidArguments(describe_validation_error(exc, origin, "a field")) from None


def _load_text(text: str, origin: str) -> Any:
    import yaml

    try:
        return json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InvalidArguments(f"{origin}: not valid YAML or JSON{line}: {str(exc).splitlines()[0]}") from None
