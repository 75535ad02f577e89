"""workflow_validate's checks, against the real tool registry: every problem of a document at
once, each naming its step and field; the plan in levels; scopes per caller."""

from __future__ import annotations

from typing import Any

import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.security.principal import Principal

READER = Principal("reader", frozenset({"read"}))

GOOD = {
    "name": "fork",
    "inputs": {"data": {"type": "string", "default": "chats.jsonl"}, "steps": {"type": "integer", "default": 30}},
    "steps": {
        "import": {"tool": "dataset_import", "arguments": {"path": "${inputs.data}", "name": "chats"}},
        "prepare": {"tool": "dataset_prepare", "arguments": {"dataset": "${import.dataset.id}"}},
        "train": {"tool": "train_start", "arguments": {"spec": {"base_model": "models/tiny", "dataset": "${prepare.dataset.id}",
                                                                "max_steps": "${inputs.steps}"}}},
        "look": {"tool": "dataset_inspect", "needs": ["prepare"], "arguments": {"dataset": "${import.dataset.id}"}},
        "register": {"tool": "model_register", "when": "${train.final_loss} < 5",
                     "arguments": {"name": "chat", "job_id": "${train.job_id}"}},
    },
    "outputs": {"version": "${register.id}"},
}  # fmt: skip


async def check(app: Any, document: dict[str, Any], principal: Principal | None = None, inputs: Any = None) -> Any:
    return await app.services.workflows.check(principal or Principal.local(), None, document, inputs)


async def test_a_good_document_validates_with_its_plan_and_drawing(app: Any) -> None:
    checked = await check(app, GOOD)
    assert checked.valid and checked.problems == [], checked.problems
    assert checked.levels == [["import"], ["prepare"], ["train", "look"], ["register"]]
    assert "import --> prepare" in checked.mermaid and "train --> register" in checked.mermaid
    assert checked.inputs == {"data": "chats.jsonl", "steps": 30}


# One document with one of each problem workflow_validate knows, and where each is reported.
BAD = {"name": "bad", "steps": {
    "a": {"tool": "no_such_tool"},
    "b": {"tool": "dataset_prepare", "arguments": {"datset": "x"}},  # unknown argument, missing required one
    "c": {"tool": "train_start", "arguments": {"spec": {}, "priority": "high"}},  # wrong literal type
    "d": {"tool": "dataset_inspect", "arguments": {"dataset": "${ghost.id}"}},  # unknown step
    "e": {"tool": "dataset_inspect", "arguments": {"dataset": "${b.no_field}"}},  # field the result lacks
    "f": {"tool": "dataset_inspect", "arguments": {"dataset": "x", "samples": "${b.rows}"}, "when": "b.rows >"},
    "g": {"tool": "dataset_list", "needs": ["h"]},
    "h": {"tool": "dataset_list", "needs": ["g"]},  # a cycle
    "i": {"tool": "dataset_inspect", "arguments": {"dataset": "${b.splits}"}},  # an object where text is wanted
    "j": {"tool": "workflow_run", "arguments": {"workflow": "lifecycle"}},
    "k": {"tool": "train_start", "arguments": {"spec": {}, "idempotency_key": "mine"}},
    "l": {"tool": "dataset_list", "arguments": {"limit": "${inputs.nothing}"}, "needs": ["zz"]},
}, "outputs": {"x": "${a.missing_step_value} ${nope.x}"}}  # fmt: skip
BAD_WHERE = {("a", "tool"), ("b", "arguments.datset"), ("b", "arguments.dataset"), ("c", "arguments.priority"),
             ("d", "arguments.dataset"), ("e", "arguments.dataset"), ("f", "when"), ("i", "arguments.dataset"),
             ("j", "tool"), ("k", "arguments.idempotency_key"), ("l", "arguments.limit"), ("l", "needs"),
             (None, "outputs.x")}  # fmt: skip


def check_bad(problems: list[dict[str, Any]]) -> None:
    """What a check of BAD must report: each problem, where it is, with a message that says why."""
    found = {(p["step"], p["field"]) for p in problems}
    text = "\n".join(f"{p['step']} {p['field']} {p['message']}" for p in problems)
    assert BAD_WHERE <= found, text
    assert any(p["field"] == "needs" and "cycle" in p["message"] and p["step"] in ("g", "h") for p in problems), text
    assert "unknown tool 'no_such_tool'" in text and "'ghost' is not a step" in text
    assert "b's result has no field 'no_field'" in text and "does not parse" in text
    assert "dataset_inspect takes string here; ${b.splits} is object" in text
    assert "workflow_run cannot be a step" in text and "set by the workflow itself" in text


async def test_every_problem_is_reported_at_once_naming_its_step_and_field(app: Any) -> None:
    checked = await check(app, BAD)
    assert not checked.valid
    check_bad([p.model_dump() for p in checked.problems])
    assert checked.levels == []  # no plan for a graph with a cycle


async def test_a_read_only_key_may_not_put_a_training_step_in_a_workflow(app: Any) -> None:
    checked = await check(app, GOOD, READER)
    refused = {p.step for p in checked.problems if p.field == "tool"}
    assert refused == {"import", "prepare", "train", "register"}  # dataset_inspect only reads
    assert all("'train' scope" in p.message for p in checked.problems if p.field == "tool")
    with pytest.raises(InvalidArguments, match=r"nothing was started: step import, tool: dataset_import needs the 'train'"):
        await app.services.workflows.run(READER, None, GOOD, None)


async def test_inputs_are_checked_against_their_declared_types(app: Any) -> None:
    document = {**GOOD, "inputs": {**GOOD["inputs"], "key": {"type": "string", "required": True}}}
    checked = await check(app, document, inputs={"steps": "many", "other": 1})
    messages = {p.field: p.message for p in checked.problems}
    assert messages["inputs.steps"] == "expected integer, got string"
    assert messages["inputs.other"].startswith("not an input of this workflow")
    assert messages["inputs.key"] == "required: give it in inputs"


@pytest.mark.parametrize(("document", "fragment"), [
    ("name: x\nsteps: [", "not valid YAML or JSON"),
    ({"name": "x", "steps": {}}, "'steps'"),
    ({"name": "x", "steps": {"Bad-Name": {"tool": "dataset_list"}}}, "step name 'Bad-Name'"),
    ({"name": "x", "steps": {"a": {"tool": "dataset_list", "retries": 99}}}, "'steps.a.retries'"),
    ({"name": "x", "steps": {"a": {"tool": "dataset_list", "on_failure": "ignore"}}}, "'steps.a.on_failure'"),
])  # fmt: skip
async def test_a_document_of_the_wrong_shape_is_refused_naming_the_field(app: Any, document: Any, fragment: str) -> None:
    with pytest.raises(InvalidArguments, match=fragment):
        await check(app, document)


async def test_the_examples_in_configs_workflows_validate(app: Any) -> None:
    listed = await app.services.workflows.list(Principal.local())
    assert {"lifecycle", "sweep-then-promote", "optional-branch", "flywheel", "flywheel-dpo"} <= set(listed.examples)
    cycle = {"model": "support", "production": "support@v1", "base_model": "models/tiny", "eval_dataset": "heldout"}
    for name in listed.examples:
        inputs = cycle if name.startswith("flywheel") else {"data": "chats.jsonl"}
        checked = await app.services.workflows.check(Principal.local(), name, None, inputs)
        assert checked.valid, (name, checked.problems)
