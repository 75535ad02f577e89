"""A tool body is one call into a domain service, and no tool reaches into a repository
(DESIGN §3): the logic lives in forge_mcp/<area>/service.py, where the chat operator and
workflows call the same methods with the caller's rights. These tests read the source of
every capability and resource of every module in tools/ (the test-only toolset included),
and of each module as a whole, and fail naming the tool and what to do."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import forge_mcp.tools
from forge_mcp.capabilities import Toolset
from forge_mcp.tools import all_toolsets

# Statements in a body, the docstring aside, counted at every depth (an `if` with one statement
# inside is two). One call into a service is one; three leave room for a guard and a return.
MAX_BODY_STATEMENTS = 3
# Attribute names that reach into persistence from a tool (`services.datasets.repo…`).
REPOSITORY_ATTRIBUTES = frozenset({"repo", "_repo", "repository", "_repository"})
TOOLS_DIR = Path(forge_mcp.tools.__file__).parent
TOOL_MODULES = sorted(path.stem for path in TOOLS_DIR.glob("*.py") if path.stem != "__init__")


def _toolsets() -> list[Toolset]:
    """The `toolset` of every module in tools/, whether or not all_toolsets lists it."""
    modules = [importlib.import_module(f"forge_mcp.tools.{stem}") for stem in TOOL_MODULES]
    return [m.toolset for m in modules if isinstance(getattr(m, "toolset", None), Toolset)]


def _tool_functions() -> list[tuple[str, str, Callable[..., Any]]]:
    """(what, name, function) for every capability and resource of every toolset."""
    found = []
    for toolset in _toolsets():
        found += [("capability", cap.name, cap.fn) for cap in toolset.capabilities]
        found += [("resource", spec.uri, spec.fn) for spec in toolset.resources]
    return found


def _function_node(fn: Callable[..., Any]) -> ast.AsyncFunctionDef:
    node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    assert isinstance(node, ast.AsyncFunctionDef), f"{fn.__qualname__} is not an async function"
    return node


def _body(node: ast.AsyncFunctionDef) -> list[ast.stmt]:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring: the prompt the agent reads, not logic
    return body


def count_statements(node: ast.AsyncFunctionDef) -> int:
    return sum(1 for top in _body(node) for stmt in ast.walk(top) if isinstance(stmt, ast.stmt))


def repository_accesses(tree: ast.AST) -> list[str]:
    """Each `.repo`-like attribute access and each import of a repository module, as 'line N: …'."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in REPOSITORY_ATTRIBUTES:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").endswith(".repository"):
            found.append(f"line {node.lineno}: from {node.module} import …")
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names if a.name.endswith(".repository")]
    return found


TOOLS = {name: (what, fn) for what, name, fn in _tool_functions()}


@pytest.mark.parametrize("name", list(TOOLS))
def test_a_tool_body_is_one_call_into_a_service(name: str) -> None:
    what, fn = TOOLS[name]
    node = _function_node(fn)
    statements = count_statements(node)
    assert statements <= MAX_BODY_STATEMENTS, (
        f"{inspect.getsourcefile(fn)}: the {what} {name} has {statements} statements in its body (at most "
        f"{MAX_BODY_STATEMENTS}, docstring aside). Move its logic into the domain service it belongs to "
        f"(forge_mcp/<area>/service.py, reached through `services`, with the caller's Principal where rights or "
        f"ownership matter) and make the body one call to it (DESIGN §3)"
    )
    accesses = repository_accesses(node)
    assert not accesses, (
        f"{inspect.getsourcefile(fn)}: the {what} {name} reaches into a repository ({'; '.join(accesses)}). "
        "Tools do not touch repositories: add or use a method on the domain service (DESIGN §3)"
    )


@pytest.mark.parametrize("module", TOOL_MODULES)
def test_no_tool_module_reaches_into_a_repository(module: str) -> None:
    """The whole module, helpers included: a body that calls a helper reaching in is no better."""
    path = TOOLS_DIR / f"{module}.py"
    accesses = repository_accesses(ast.parse(path.read_text()))
    assert not accesses, (
        f"tools/{path.name} reaches into a repository ({'; '.join(accesses)}). Tools do not touch "
        "repositories: call the domain service that owns the data (forge_mcp/<area>/service.py, DESIGN §3)"
    )


def test_the_guard_sees_every_toolset_and_catches_what_it_should() -> None:
    """The checks themselves: every toolset the server offers is walked, and a fat body or a
    `.repo` is caught."""
    walked = {id(toolset) for toolset in _toolsets()}
    assert all(id(toolset) in walked for toolset in all_toolsets())
    assert {cap.name for toolset in all_toolsets() for cap in toolset.capabilities} <= set(TOOLS)
    assert len(TOOLS) >= 29
    fat = ast.parse(textwrap.dedent('''
        async def fat(services, x):
            """Doc."""
            info = await services.datasets.repo.get(x)
            if info.rows > 3:
                raise ValueError(x)
            return info
    ''')).body[0]
    assert isinstance(fat, ast.AsyncFunctionDef)
    assert count_statements(fat) == 4
    assert repository_accesses(fat) == ["line 4: services.datasets.repo"]
    thin = ast.parse('async def thin(services, x):\n    """Doc."""\n    return await services.datasets.get(x)\n').body[0]
    assert isinstance(thin, ast.AsyncFunctionDef)
    assert count_statements(thin) == 1 and repository_accesses(thin) == []
