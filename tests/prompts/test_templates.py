"""The template engine on its own: the variables a template expects, templates refused when they
are saved (with the line), and the sandbox at render: Python's internals out of reach, and every
way a template could exhaust the server's memory or CPU stopped with a message, never a traceback."""

from __future__ import annotations

import time
from typing import Any

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.prompts.defaults import packaged_defaults
from forge_mcp.prompts.limits import MAX_OUTPUT_CHARS
from forge_mcp.prompts.templates import TemplateEngine, TemplateVariables

ENGINE = TemplateEngine()


def refusal(template: str, values: dict[str, Any] | None = None, engine: TemplateEngine = ENGINE) -> str:
    with pytest.raises(InvalidArguments) as caught:
        engine.render(template, values or {}, what="evil@v1")
    message = caught.value.message
    assert message.startswith("evil@v1: ") and "Traceback" not in message
    return message


def test_variables_are_the_names_a_template_expects_in_the_order_they_first_appear() -> None:
    template = ("{% set greeting = 'Hi' %}{{ greeting }} {{ customer.name }},\n{% for item in items %}{{ loop.index }}. "
                "{{ item|upper }} {{ customer.tier }}{% endfor %}{{ range(2)|list }} {{ tone|default('kind') }}")  # fmt: skip
    found = ENGINE.variables(template)
    assert found.names == ["customer", "items", "tone"]  # not set names, loop variables or globals
    assert found.optional == ["tone"]  # every use has a default
    assert ENGINE.variables("No variables at all.") == TemplateVariables([], [])


def test_a_variable_is_optional_only_where_every_use_copes_with_its_absence() -> None:
    template = (
        "{% if context is defined and ticket is defined %}Context: {{ context }} ({{ ticket.id }}){% endif %}\n"
        "{{ tone|d('kind') }} {% if lang is not defined %}English{% endif %}\n"
        "{% if note is defined %}{{ note }}{% else %}{{ note }}{% endif %}{{ name|default(user) }}"
    )  # fmt: skip
    found = ENGINE.variables(template)
    assert found.names == ["context", "ticket", "tone", "lang", "note", "name", "user"]
    assert found.optional == ["context", "ticket", "tone", "lang", "name"]  # note's else branch and user need them
    assert ENGINE.render(template, {"note": "n", "user": "Ann"}, what="t@v1") == "\nkind English\nnAnn"


def test_the_packaged_defaults_parse_and_declare_the_variables_they_use() -> None:
    for default in packaged_defaults():
        assert ENGINE.variables(default.template) == TemplateVariables(list(default.variables), []), default.name
        assert ENGINE.render(default.template, {}, what=default.name) == default.template  # plain text, kept as is


def test_rendering_fills_the_variables_and_keeps_the_text_as_written() -> None:
    template = "Dear {{ customer.name }},\n{% for o in orders %}- {{ o.id }}: {{ '%.2f'|format(o.total) }}\n{% endfor %}<b>ok</b>\n"
    text = ENGINE.render(template, {"customer": {"name": "Ann & Bo"}, "orders": [{"id": 7, "total": 3.5}]}, what="t@v1")
    assert text == "Dear Ann & Bo,\n- 7: 3.50\n<b>ok</b>\n"  # no HTML escaping, the last newline kept


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Hello {{ name", "template: line 1: unexpected end of template, expected 'end of print statement'"),
        (
            "ok\n{% if x %}\nmore",
            "template: line 2: Unexpected end of template. Jinja was looking for the following "
            "tags: 'elif' or 'else' or 'endif'",
        ),
        (
            "{% for x in %}{% endfor %}",
            "template: line 1: Expected an expression, got 'end of statement block'; it is "
            "Jinja2 syntax: {{ name }} for a variable",
        ),
        ("a\n{% include 'other' %}", "template: line 2: {% include %} is not supported; a prompt is one template"),
        ("{% extends 'base' %}", "template: line 1: {% extends %} is not supported"),
        ("{% import 'macros' as m %}", "template: line 1: {% import %} is not supported"),
    ],
)
def test_a_template_that_does_not_parse_or_loads_another_is_refused_naming_the_line(
    template: str, expected: str
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        ENGINE.variables(template)
    assert caught.value.message.startswith(expected)


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("{{ ''.__class__.__mro__ }}", {}, "access to attribute '__class__' of 'str' object is unsafe"),
        (
            "{{ x.__class__.__base__.__subclasses__() }}",
            {"x": 1},
            "access to attribute '__class__' of 'int' object is unsafe",
        ),
        ("{{ cycler.__init__.__globals__ }}", {}, "access to attribute '__init__' of 'type' object is unsafe"),
        ("{{ self.__init__ }}", {}, "access to attribute '__init__' of 'TemplateReference' object is unsafe"),
        ("{{ '{0.__class__}'.format(1) }}", {}, "access to attribute '__class__' of 'int' object is unsafe"),
        ("{{ items.append(4) }}", {"items": [1]}, "access to attribute 'append' of 'list' object is unsafe"),
        ("{{ d.update(a=1) }}", {"d": {}}, "access to attribute 'update' of 'dict' object is unsafe"),
    ],
)
def test_the_sandbox_keeps_python_internals_and_mutation_out_of_reach(
    template: str, values: dict, expected: str
) -> None:
    message = refusal(template, values)
    assert message == f"evil@v1: line 1: the sandbox refused it: {expected}"


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("{{ 'x' * 10**10 }}", {}, "repeating 1 characters or items 10,000,000,000 times is over the limit of 200,000"),
        ("{{ [0] * 10**9 }}", {}, "repeating 1 characters or items 1,000,000,000 times"),
        ("{{ 2 ** 100000 }}", {}, "2 ** 100000 is over the limit of 4,096 bits"),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            {},
            "a value of 262,144 characters or items is over the limit of 200,000",
        ),
        (
            "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
            {},
            "joining 262,144 characters or items is over the limit of 200,000",
        ),
        ("{{ 'x'.ljust(10**9) }}", {}, "the argument 1000000000 is over the limit of 200,000 for a size or count"),
        ("{{ 'x'|center(10**9) }}", {}, "the argument 1000000000 is over the limit of 200,000"),
        ("{{ '{:>999999999}'.format('x') }}", {}, "a format width of 999999999 is over the limit of 200,000"),
        ("{{ '%999999999s' % 'x' }}", {}, "a format width of 999999999 is over the limit of 200,000"),
        ("{{ '%*s' % (10**9, 'x') }}", {}, "a '%' format takes no '*' width or precision"),
        ("{{ '%999999999s'|format('x') }}", {}, "a format width of 999999999 is over the limit of 200,000"),
        ("{{ ('{0}' * 1000).format(t) }}", {"t": "a" * 100_000}, "1,000 format fields of up to 100,000 characters"),
        (
            "{{ t.replace('', t) }}",
            {"t": "a" * 100_000},
            "this call would work through about 10,000,000,000 characters",
        ),
        (
            "{{ t|replace('', t) }}",
            {"t": "a" * 100_000},
            "this call would work through about 10,000,000,000 characters",
        ),
        ("{{ range(100000)|join(t) }}", {"t": "a" * 1000}, "this call would work through about 100,000,000 characters"),
        (
            "{{ (t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t, t)|join }}",
            {"t": "a" * 200_000},
            "this call would work through about 10,400,052 characters",
        ),
        (
            "{{ ([t] * 100)|map('upper')|join }}",
            {"t": "a" * 200_000},
            "repeating 200,001 characters or items 100 times",
        ),
        ("{{ [t] * 100 }}", {"t": "a" * 200_000}, "repeating 200,001 characters or items 100 times"),
    ],
)
def test_a_template_cannot_build_values_past_the_bounds(template: str, values: dict, expected: str) -> None:
    started = time.monotonic()
    message = refusal(template, values)
    assert message.startswith("evil@v1: line 1: the sandbox refused it: " + expected), message
    assert time.monotonic() - started < 1.5  # refused before the work, not after it


def test_a_lazy_sequence_reaching_a_filter_is_read_within_the_bound() -> None:
    message = refusal("{{ range(60)|map('string')|map('center', 200000)|join }}")
    assert "a sequence of over 10,000,000 characters or items reached a filter" in message


def test_output_is_bounded_and_a_long_loop_is_stopped_in_time() -> None:
    too_long = refusal("{% for i in range(100000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}")
    assert too_long == (f"evil@v1: the rendered text is over the limit of {MAX_OUTPUT_CHARS:,} characters; give shorter "
                        "values, or loop over fewer items")  # fmt: skip
    quick = TemplateEngine(render_seconds=0.3)
    started = time.monotonic()
    silent = refusal("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", engine=quick)
    assert time.monotonic() - started < 3
    assert silent == "evil@v1: rendering took over 0.3 s and was stopped; a loop in the template runs too long"
    assert quick.render("{{ n }}", {"n": 1}, what="t@v1") == "1"  # the engine, and its thread, work on


def test_runtime_errors_name_the_template_line() -> None:
    assert refusal("a\nb\n{{ x.y }}", {"x": {}}) == (
        "evil@v1: line 3: 'dict object' has no attribute 'y'; check the names the template uses and the shape of the "
        "variables you gave"
    )
    assert (
        refusal("\n{{ 1 / n }}", {"n": 0}) == "evil@v1: line 2: rendering failed: ZeroDivisionError: division by zero"
    )
    assert refusal("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").startswith(
        "evil@v1: line 1: rendering failed: RecursionError: maximum recursion depth exceeded"
    )
    assert refusal("{{ n|int + 'a' }}", {"n": "1"}).startswith("evil@v1: line 1: rendering failed: TypeError: ")
