"""The JSON depth scan: exact on brackets outside strings, escapes included, linear,
and able to read a too-deep request's id."""

from __future__ import annotations

import json

import pytest

from forge_mcp.protocols.json_depth import MAX_JSON_DEPTH, exceeds_depth, request_id, shallow_parse


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def parsed_depth(value: object) -> int:
    depth, level = 0, [(value, 1)]
    while level:
        item, d = level.pop()
        if isinstance(item, list | dict):
            depth = max(depth, d)
            level.extend((child, d + 1) for child in (item.values() if isinstance(item, dict) else item))
    return depth


@pytest.mark.parametrize(
    "text",
    [
        nested(MAX_JSON_DEPTH), nested(MAX_JSON_DEPTH + 1), '{"a":"' + "[" * 500 + '"}', '["\\\\",' + nested(70) + "]",
        '["\\"' + "[" * 100 + '"]', '{"k":{"k":{"k":[1,2,{"x":"]]]}}}"}]}}}', '["\\\\\\"[[["]', '{"a":"{\\u0022[[["}',
        json.dumps({"s": "é[" * 80, "deep": json.loads(nested(30))}),
    ],
)  # fmt: skip
def test_agrees_with_a_real_parser(text: str) -> None:
    assert exceeds_depth(text) == (parsed_depth(json.loads(text)) > MAX_JSON_DEPTH)


def test_a_shallow_document_is_passed_without_scanning() -> None:
    assert not exceeds_depth(b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert not exceeds_depth(b"")


def test_the_id_of_a_too_deep_request_is_read() -> None:
    body = '{"jsonrpc":"2.0","method":"tools/call","params":{"arguments":{"x":' + nested(1000) + '}},"id":"a\\"b["}'
    assert exceeds_depth(body)
    assert request_id(body) == 'a"b['
    assert shallow_parse(body) == {"jsonrpc": "2.0", "method": "tools/call", "params": {"arguments": {}}, "id": 'a"b['}
    assert request_id(nested(100)) is None
    assert request_id('{"id": true, "x": ' + nested(100) + "}") is None
    assert request_id(b"\xff{[[") is None


def test_bodies_at_the_size_limit_are_scanned_without_recursion() -> None:
    """Adversarial shapes at the body limit: deep, wide, all-brackets strings, escaped quotes.
    The scan is a loop, so none of them recurses; how fast it is belongs to a benchmark, not here."""
    bodies = [
        ("[" + ("[" * 60 + "]" * 60 + ",") * 34_000 + "1]").encode(),
        b'"' + b"[" * 4_000_000 + b'"',
        b'["' + b'\\\\\\"[' * 800_000 + b'"]',
        nested(2_000_000).encode(),
    ]
    results = [exceeds_depth(body) for body in bodies] + [request_id(body) for body in bodies]
    assert results[:4] == [False, False, False, True]
