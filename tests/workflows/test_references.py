"""References between steps: a whole reference keeps its type, one inside text is written in."""

from __future__ import annotations

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.workflows.references import Path, Unresolved, malformed, paths_in, resolve

SCOPE = {"inputs": {"steps": 60, "name": "quick"}, "train": {"job_id": "job_1", "adapter": "runs/job_1/adapter"},
         "split": {"splits": [{"name": "train", "rows": 80}]}}  # fmt: skip


def test_a_whole_reference_keeps_its_type_and_text_gets_it_written_in() -> None:
    arguments = {"spec": {"max_steps": "${inputs.steps}", "dataset": "${inputs.name}@v2"},
                 "note": "trained by ${train.job_id} for ${inputs.steps} steps", "rows": "${split.splits[0].rows}",
                 "tags": ["${inputs.name}", 3]}  # fmt: skip
    assert resolve(arguments, SCOPE) == {"spec": {"max_steps": 60, "dataset": "quick@v2"},
                                         "note": "trained by job_1 for 60 steps", "rows": 80, "tags": ["quick", 3]}  # fmt: skip


@pytest.mark.parametrize(("text", "fragment"), [
    ("${skipped.x}", "skipped has no value"),
    ("${train.missing}", "train has no field 'missing'"),
    ("${split.splits[3].rows}", r"split.splits has no item \[3\]"),
])  # fmt: skip
def test_an_unresolvable_reference_names_what_is_missing(text: str, fragment: str) -> None:
    with pytest.raises(Unresolved, match=fragment):
        resolve(text, SCOPE)


def test_paths_are_found_with_where_they_are_and_malformed_ones_are_reported() -> None:
    found = [(where, p.text) for where, p in paths_in({"a": ["${x.y}", {"b": "${inputs.z[1]}"}]})]
    assert found == [("a[0]", "x.y"), ("a[1].b", "inputs.z[1]")]
    assert list(malformed({"a": "${x.y} and ${not closed", "b": "${Bad}"})) == ["${not closed", "${Bad}"]
    with pytest.raises(InvalidArguments):
        Path.parse("x..y")


def test_secrets_are_hidden_by_name_and_wherever_their_text_appears() -> None:
    from forge_mcp.workflows.state import redacted

    result = {"url": "http://127.0.0.1:9000/v1", "api_key": "sk-0123456789abcdef",
              "example": "curl -H 'Authorization: Bearer sk-0123456789abcdef' …",
              "nested": [{"judge_api_key_env": "JUDGE_KEY", "token": None, "hf_token": "hf_abcdefghijkl"}]}  # fmt: skip
    assert redacted(result) == {"url": "http://127.0.0.1:9000/v1", "api_key": "***",
                                "example": "curl -H 'Authorization: Bearer ***' …",
                                "nested": [{"judge_api_key_env": "JUDGE_KEY", "token": None, "hf_token": "***"}]}  # fmt: skip
