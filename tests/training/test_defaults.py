"""The defaults of a first training call: max_length fitted to the model when the caller
did not choose it, and the rows of a dataset without splits (all of them, or a seeded
hold-out for evaluation), chosen in one place for both backends."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forge_mcp.errors import InvalidArguments
from forge_mcp.training.plan import BaseModelInfo, TrainPlan, check_fit, fit_max_length
from forge_mcp.training.run import holdout_size, select_rows
from forge_mcp.training.spec import resolve_spec

SPEC = {"base_model": "models/tiny", "dataset": "d"}


def base(positions: int | None) -> BaseModelInfo:
    return BaseModelInfo(path="models/tiny", architecture="LlamaForCausalLM", parameters=1, hidden_size=64, layers=2,
                         vocab_size=1000, max_positions=positions, weights_dtype="F32")  # fmt: skip


def test_the_default_max_length_is_lowered_to_the_model_and_says_so() -> None:
    spec, note = fit_max_length(resolve_spec(SPEC), base(512), from_caller=False)
    assert spec.max_length == 512 and note == "max_length set to 512, the model's limit (the default 1024 is over it)"
    assert check_fit(spec, "messages", base(512)) == []
    spec, note = fit_max_length(resolve_spec(SPEC), base(4096), from_caller=False)
    assert spec.max_length == 1024 and note is None
    spec, note = fit_max_length(resolve_spec(SPEC), base(None), from_caller=False)
    assert spec.max_length == 1024 and note is None


def test_a_recipes_max_length_is_lowered_too() -> None:
    spec, note = fit_max_length(resolve_spec(SPEC, "sft-lora"), base(512), from_caller=False)
    assert spec.max_length == 512 and note == "max_length set to 512, the model's limit (the recipe's 2048 is over it)"


def test_the_callers_own_max_length_is_kept_and_refused_when_over() -> None:
    spec, note = fit_max_length(resolve_spec({**SPEC, "max_length": 4096}), base(512), from_caller=True)
    assert spec.max_length == 4096 and note is None
    assert check_fit(spec, "messages", base(512)) == ["max_length: 4096 is over the model's limit of 512 positions"]
    spec, note = fit_max_length(resolve_spec({**SPEC, "max_length": 128}), base(512), from_caller=True)
    assert spec.max_length == 128 and note is None


def test_an_imported_chat_layout_trains_as_messages() -> None:
    spec = resolve_spec({**SPEC, "max_length": 128})
    assert check_fit(spec, "sharegpt", base(512)) == [] and check_fit(spec, "alpaca", base(512)) == []
    assert "dataset: sft learns from messages data" in check_fit(spec, "preference", base(512))[0]


def sharegpt_rows(n: int) -> list[dict]:
    return [{"id": i, "conversations": [{"from": "human", "value": f"q{i}"}, {"from": "gpt", "value": f"a{i}"}]}
            for i in range(n)]  # fmt: skip


def imported(path: Path, rows: list[dict]) -> Path:
    """A dataset as dataset_import leaves it: (line, row) in the source layout, no split column."""
    pq.write_table(pa.table({"line": [str(i + 1) for i in range(len(rows))], "row": [json.dumps(r) for r in rows]}), path)
    return path


def plan(holdout: int = 0, seed: int = 0, kind: str = "sharegpt", **fields: object) -> TrainPlan:
    return TrainPlan.model_construct(spec=resolve_spec({**SPEC, "seed": seed, **fields}), dataset_kind=kind,
                                     holdout_rows=holdout)  # fmt: skip


def test_a_dataset_without_splits_trains_on_every_row_in_canonical_form(tmp_path: Path) -> None:
    file = imported(tmp_path / "data.parquet", sharegpt_rows(20))
    train, evaluation = select_rows(file, plan())
    assert evaluation is None and len(train) == 20
    assert train[3] == {"messages": [{"role": "user", "content": "q3"}, {"role": "assistant", "content": "a3"}]}


def test_the_hold_out_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    file = imported(tmp_path / "data.parquet", sharegpt_rows(30))
    assert holdout_size(30) == 3 and holdout_size(5) == 1 and holdout_size(2) == 1
    train, evaluation = select_rows(file, plan(holdout=3, seed=7, eval_split="test"))
    again = select_rows(file, plan(holdout=3, seed=7, eval_split="test"))
    other = select_rows(file, plan(holdout=3, seed=8, eval_split="test"))
    assert evaluation is not None and len(evaluation) == 3 and len(train) == 27
    assert (train, evaluation) == again and other[1] != evaluation
    contents = [r["messages"][0]["content"] for r in train + evaluation]
    assert sorted(contents) == sorted(f"q{i}" for i in range(30))


def test_a_row_that_does_not_fit_an_old_import_is_named(tmp_path: Path) -> None:
    file = imported(tmp_path / "data.parquet", [*sharegpt_rows(3), {"conversations": []}])
    with pytest.raises(InvalidArguments, match="dataset: line 4 does not fit sharegpt .*run dataset_prepare"):
        select_rows(file, plan())


def test_a_dataset_with_splits_gives_the_named_splits(tmp_path: Path) -> None:
    rows = [json.dumps({"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]})
            for i in range(10)]  # fmt: skip
    splits = ["test" if i % 5 == 0 else "train" for i in range(10)]
    pq.write_table(pa.table({"line": [str(i) for i in range(10)], "row": rows, "split": splits}), tmp_path / "data.parquet")
    train, evaluation = select_rows(tmp_path / "data.parquet", plan(kind="messages", split="train", eval_split="test"))
    assert len(train) == 8 and evaluation is not None and len(evaluation) == 2
