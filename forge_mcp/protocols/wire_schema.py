"""Tool schemas as MCP clients receive them. Every client pays for `tools/list` in every
conversation, so the schemas the SDK derives from pydantic (a title on every field, an
`anyOf` for every optional one, whole nested result models) are compacted once, here.

- `input_schema` keeps everything an agent needs to call a tool right: types, required
  fields, enums, bounds, patterns, defaults and descriptions. It drops generated titles
  and `additionalProperties: true`, inlines `$defs` (unless recursive) and writes
  `anyOf: [X, null]` as `type: [X, "null"]`. An optional argument whose default is null
  shows its plain type (leave it out for the default; the server still accepts null).
- `output_schema` lists a result's top-level fields as `required`: an agent learns what
  comes back, and a client that validates structured content still checks that every
  field is there. Their types, and everything nested, the agent reads in the result
  itself. It accepts every result the original did: a result is a pydantic model dumped
  whole, so it always carries every field (tests/test_tool_list_size.py checks that no
  result model excludes one).

The server still validates results against the pydantic model, and arguments against the
capability's own model, so neither compaction weakens a check.
"""

from __future__ import annotations

from typing import Any

JsonSchema = dict[str, Any]

# Keywords whose value is a schema, a list of schemas, or a map from names to schemas:
# everything else (enum, const, default, required, a property *named* title...) is data.
_SCHEMA_VALUED = {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
                  "unevaluatedProperties", "unevaluatedItems"}  # fmt: skip
_SCHEMA_LISTS = {"anyOf", "oneOf", "allOf", "prefixItems"}
_SCHEMA_MAPS = {"properties", "patternProperties", "dependentSchemas", "$defs"}
_DEFS_PREFIX = "#/$defs/"


def input_schema(schema: JsonSchema) -> JsonSchema:
    """The schema an agent calls the tool with, without what the SDK adds for free."""
    defs = schema.get("$defs", {})
    kept: set[str] = set()
    body = _inline({k: v for k, v in schema.items() if k != "$defs"}, defs, (), kept)
    compacted = _tidy(body)
    required = set(schema.get("required", ()))
    for name, node in compacted.get("properties", {}).items():
        original = schema["properties"][name]
        if name not in required and "default" in original and original["default"] is None:
            compacted["properties"][name] = _not_null(node)
    definitions: JsonSchema = {}  # recursive models keep theirs (one may reveal another)
    while todo := sorted(kept - set(definitions)):
        for name in todo:
            definitions[name] = _tidy(_inline(defs[name], defs, (name,), kept))
    if definitions:
        compacted["$defs"] = dict(sorted(definitions.items()))
    return compacted


def output_schema(schema: JsonSchema) -> JsonSchema:
    """An object with the result's top-level fields, every one of which a result carries."""
    root = _resolve(schema, schema.get("$defs", {}))
    properties = root.get("properties") if isinstance(root, dict) else None
    if not isinstance(properties, dict) or not properties:
        return {"type": "object"}
    return {"type": "object", "required": list(properties)}


def _inline(node: Any, defs: dict[str, Any], stack: tuple[str, ...], kept: set[str]) -> Any:
    """Replace each `$ref` into `$defs` with the definition itself (a recursive one stays a ref)."""
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS_PREFIX) and ref[len(_DEFS_PREFIX):] in defs:
        name = ref[len(_DEFS_PREFIX):]
        if name in stack:
            kept.add(name)
            return node
        target = _inline(defs[name], defs, (*stack, name), kept)
        siblings = {k: _inline_value(k, v, defs, stack, kept) for k, v in node.items() if k != "$ref"}
        return {**target, **siblings}  # a sibling (a field's description) wins over the model's own
    return {k: _inline_value(k, v, defs, stack, kept) for k, v in node.items()}


def _inline_value(key: str, value: Any, defs: dict[str, Any], stack: tuple[str, ...], kept: set[str]) -> Any:
    if key in _SCHEMA_VALUED:
        return _inline(value, defs, stack, kept)
    if key in _SCHEMA_LISTS and isinstance(value, list):
        return [_inline(v, defs, stack, kept) for v in value]
    if key in _SCHEMA_MAPS and isinstance(value, dict):
        return {name: _inline(v, defs, stack, kept) for name, v in value.items()}
    return value


def _tidy(node: Any) -> Any:
    """Drop generated titles, null defaults and `additionalProperties: true`; fold nullable anyOf."""
    if not isinstance(node, dict):
        return node
    out: JsonSchema = {}
    for key, value in node.items():
        if key == "title" or (key == "default" and value is None):
            continue
        if key == "additionalProperties" and value is True:
            continue
        if key in _SCHEMA_VALUED:
            out[key] = _tidy(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_tidy(v) for v in value]
        elif key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _tidy(v) for name, v in value.items()}
        else:
            out[key] = value
    return _fold_nullable(out)


def _fold_nullable(node: JsonSchema) -> JsonSchema:
    """`anyOf: [X, {"type": "null"}]` -> X with "null" added to its type (and enum): same meaning, fewer bytes."""
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches):
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if not isinstance(other, dict) or "const" in other or set(other) & (set(node) - {"anyOf"}):
        return node
    kind = other.get("type")
    if not isinstance(kind, str) and not (kind is None and isinstance(other.get("enum"), list)):
        return node  # a union, a ref or something unusual: leave the anyOf
    folded = dict(other)
    if isinstance(kind, str):
        folded["type"] = [kind, "null"]
    if isinstance(other.get("enum"), list):
        folded["enum"] = [*other["enum"], None]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    return {**folded, **rest}


def _not_null(node: JsonSchema) -> JsonSchema:
    """The schema without its null option (for an argument whose default is null anyway)."""
    out = dict(node)
    kind = out.get("type")
    if isinstance(kind, list) and "null" in kind:
        rest = [k for k in kind if k != "null"]
        out["type"] = rest[0] if len(rest) == 1 else rest
    if isinstance(out.get("enum"), list) and None in out["enum"]:
        out["enum"] = [value for value in out["enum"] if value is not None]
    branches = out.get("anyOf")
    if isinstance(branches, list) and {"type": "null"} in branches:
        rest_branches = [b for b in branches if b != {"type": "null"}]
        if len(rest_branches) == 1 and isinstance(rest_branches[0], dict) and not set(rest_branches[0]) & set(out):
            del out["anyOf"]
            return {**rest_branches[0], **out}
        out["anyOf"] = rest_branches
    return out


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith(_DEFS_PREFIX):
        name = node["$ref"][len(_DEFS_PREFIX):]
        if name in seen or name not in defs:
            break
        seen.add(name)
        node = defs[name]
    return node
