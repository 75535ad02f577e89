"""traces_to_dataset on a real engine: the fixture's traces (tests/flywheel/traces.py) become an
SFT dataset and a DPO pairs dataset through dataset_prepare's own steps in a worker — rows per
kind, PII masked, exact and near duplicates dropped, seeded splits, lineage back to each trace
and the report of why the others were left out — and a selection that gives no row is refused
before any job, saying why and what to do."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.flywheel.models import TraceDatasets
from forge_mcp.jobs.states import JobState
from forge_mcp.security.principal import Principal
from forge_mcp.traces.selection import TraceSelection
from tests.flywheel.traces import ALICE, BOB, CORRECTION, EMAIL, record, record_fixture, tool_turn


def rows_of(app: ForgeApp, path: str) -> list[dict]:
    return pq.read_table(Path(app.settings.home) / path / "data.parquet").to_pylist()


def leftovers(app: ForgeApp) -> list[Path]:
    folder = Path(app.settings.home) / "datasets" / ".from-traces"
    return list(folder.iterdir()) if folder.is_dir() else []


async def test_traces_become_an_sft_and_a_pairs_dataset_with_lineage_and_a_report(engine_app: ForgeApp) -> None:
    app = engine_app
    ids = await record_fixture(app)
    handle = await app.services.flywheel.traces_to_dataset(ALICE, TraceSelection(), name="support", eval_fraction=0.25,
                                                           seed=3)  # fmt: skip
    job = await app.jobs.wait(handle.job_id, 180)
    assert job.state is JobState.SUCCEEDED, job.error
    result = TraceDatasets.model_validate(job.result)
    assert [d.id for d in result.datasets] == ["support@v1", "support-pairs@v1"]
    assert result.traces_selected == 10  # alice's; bob's is not hers
    assert result.notes == ["SFT rows go to support (messages) and DPO pairs to support-pairs (preference): a dataset "
                            "holds one kind of row"]  # fmt: skip
    sft, dpo = result.sft, result.dpo
    assert sft is not None and dpo is not None
    assert (sft.dataset, sft.rows_built, sft.rows) == ("support@v1", 6, 4)
    assert sft.dropped == {"no_rating": 2, "below_threshold": 1, "failed_outcome": 1, "held_out": 0, "invalid": 0, "empty": 0,
                           "pii": 0, "duplicate": 1, "near_duplicate": 1}  # fmt: skip
    assert sft.splits == {"train": 3, "test": 1}
    assert (dpo.dataset, dpo.rows_built, dpo.rows, dpo.pairs) == ("support-pairs@v1", 2, 2, {"correction": 1, "ratings": 1})
    assert dpo.dropped == {"invalid": 0, "empty": 0, "pii": 0, "duplicate": 0, "near_duplicate": 0}

    info = await app.services.datasets.get("support")
    assert (info.kind, info.rows, info.parent_id, info.report["splits"]) == ("messages", 4, None, sft.splits)
    sft_traces = [ids[n] for n in ("corrected", "refund_good", "email", "near", "copy", "password")]  # newest first
    assert info.source == {"traces": sft_traces, "filters": {}}
    assert info.steps[0] == {"step": "traces", "rows_in": 10, "rows_out": 6, "detail": {
        "sft_rows": 6, "dropped": {"no_rating": 2, "below_threshold": 1, "failed_outcome": 1, "held_out": 0}, "min_rating": 4,
        "judge_min_score": None}}  # fmt: skip
    assert [s["step"] for s in info.steps[1:]] == ["normalise", "clean", "pii_redact", "dedup_exact", "dedup_near",
                                                   "split_random"]  # fmt: skip
    rows = rows_of(app, info.path)
    lines = {r["line"] for r in rows}
    assert {ids["corrected"], ids["refund_good"], ids["email"]} < lines and len(lines) == 4  # one of the three password traces
    assert sorted(r["split"] for r in rows) == ["test", "train", "train", "train"]
    chats = {r["line"]: json.loads(r["row"])["messages"] for r in rows}
    assert EMAIL not in json.dumps(chats) and "[EMAIL]" in chats[ids["email"]][1]["content"]
    assert chats[ids["corrected"]][-1] == {"role": "assistant", "content": CORRECTION}
    (password,) = (chat for line, chat in chats.items() if line not in (ids["corrected"], ids["refund_good"], ids["email"]))
    assert [m["role"] for m in password] == ["system", "user", "assistant", "tool", "assistant"]
    assert password[2]["tool_calls"][0]["function"]["name"] == "search_help"  # tool calls are kept to train on

    pairs = await app.services.datasets.get("support-pairs")
    assert (pairs.kind, pairs.rows) == ("preference", 2)
    assert pairs.source == {"traces": [ids["corrected"], ids["refund_good"], ids["refund_bad"]], "filters": {}}
    pair_rows = {r["line"]: json.loads(r["row"]) for r in rows_of(app, pairs.path)}
    assert set(pair_rows) == {f"{ids['corrected']}:correction", f"{ids['refund_good']}>{ids['refund_bad']}"}
    assert pair_rows[f"{ids['corrected']}:correction"]["chosen"] == [{"role": "assistant", "content": CORRECTION}]
    assert leftovers(app) == []  # the rows the job read are removed once published


async def test_traces_that_asked_a_held_out_question_give_no_row(engine_app: ForgeApp) -> None:
    app = engine_app
    ids = await record_fixture(app)
    # The held-out set asks the refund question (in other case and spacing): both refund traces
    # are left out, so neither the good answer's SFT row nor their DPO pair is made.
    held_out = {"messages": [{"role": "user", "content": "how long is  the REFUND window?"},
                             {"role": "assistant", "content": "Thirty days."}]}  # fmt: skip
    (Path(app.settings.home) / "heldout.jsonl").write_text(json.dumps(held_out) + "\n")
    await app.services.datasets.import_("heldout.jsonl", "heldout")
    handle = await app.services.flywheel.traces_to_dataset(ALICE, TraceSelection(), name="fair", held_out="heldout",
                                                           eval_fraction=0)  # fmt: skip
    job = await app.jobs.wait(handle.job_id, 180)
    assert job.state is JobState.SUCCEEDED, job.error
    result = TraceDatasets.model_validate(job.result)
    assert result.sft is not None and result.dpo is not None
    assert result.sft.rows_built == 5 and result.sft.dropped["held_out"] == 2
    assert (result.dpo.rows, result.dpo.pairs) == (1, {"correction": 1, "ratings": 0})
    assert "2 traces asked a question of heldout@v1 (held out): they give no row" in " ".join(result.notes)
    lines = {r["line"] for r in rows_of(app, (await app.services.datasets.get("fair")).path)}
    assert ids["refund_good"] not in lines and ids["corrected"] in lines


async def test_dpo_pairs_alone_under_the_name_with_the_filters_in_the_lineage(engine_app: ForgeApp) -> None:
    app = engine_app
    ids = await record_fixture(app)
    selection = TraceSelection.checked(source="chat", until=time.time() + 60)
    first = await app.services.flywheel.traces_to_dataset(ALICE, selection, name="prefs", kind="dpo", dedup="exact",
                                                          idempotency_key="prefs-1")  # fmt: skip
    again = await app.services.flywheel.traces_to_dataset(ALICE, selection, name="prefs", kind="dpo", dedup="exact",
                                                          idempotency_key="prefs-1")  # fmt: skip
    assert again.job_id == first.job_id and again.deduplicated
    job = await app.jobs.wait(first.job_id, 180)
    assert job.state is JobState.SUCCEEDED, job.error
    result = TraceDatasets.model_validate(job.result)
    assert [d.id for d in result.datasets] == ["prefs@v1"] and result.sft is None and result.notes == []
    info = result.datasets[0]
    assert info.kind == "preference" and info.source["filters"] == selection.given() == {"source": "chat",
                                                                                       "until": selection.until}  # fmt: skip
    assert set(info.source["traces"]) == {ids["corrected"], ids["refund_good"], ids["refund_bad"]}
    assert [s["step"] for s in info.steps] == ["traces", "normalise", "clean", "pii_redact", "dedup_exact", "split_random"]
    # Sent again once it is done: the same job, and no rows left behind for a job that will not read them.
    later = await app.services.flywheel.traces_to_dataset(ALICE, selection, name="prefs", kind="dpo", dedup="exact",
                                                          idempotency_key="prefs-1")  # fmt: skip
    assert (later.job_id, later.deduplicated, later.state) == (first.job_id, True, JobState.SUCCEEDED)
    assert leftovers(app) == []


ADMIN = Principal("root", frozenset({"admin"}))


@pytest.mark.parametrize(
    ("who", "filters", "options", "message"),
    [
        (ALICE, {"tags": ["billing"]}, {}, "no trace matches tags=['billing'] among the traces you can see; trace_list "
                                           "with the same filters shows what there is"),
        (ALICE, {"thread": "t-unrated"}, {}, "none of the 2 traces that match thread='t-unrated' gives an SFT row: 2 have no "
                                             "rating, and no DPO pair either (a pair needs a correction (trace_feedback)"),
        (ALICE, {"thread": "t-unrated"}, {"kind": "sft"}, "or grade them with trace_judge and set judge_min_score), or "
                                                          "lower min_rating; trace_list shows them"),
        (BOB, {}, {"kind": "dpo"}, "no DPO pair among the 1 traces: a pair needs a correction"),
        (Principal("carol", frozenset({"train"})), {}, {}, "you have no traces yet (an admin key sees everyone's): "
                                                           "trace_record stores them"),
        (ALICE, {}, {"kind": "sft", "min_rating": 5, "judge_min_score": 6}, "judge_min_score: 6 is not between 1"),
        (ALICE, {}, {"name": "a" * 60}, "name: with kind auto the pairs go to aaaaaaaaaaaaaaaaaaaa…-pairs, over 64"),
        (ALICE, {}, {"name": "Bad Name"}, "name: use 1-64 lowercase letters"),
        (ALICE, {}, {"eval_fraction": 1.0}, "eval_fraction: 1.0 must be at least 0 and below 1"),
        (ALICE, {}, {"max_traces": 0}, "max_traces: 0 is not between 1 and 10,000"),
        (ALICE, {}, {"held_out": "nothing"}, "held_out: no dataset 'nothing'; dataset_list shows what exists"),
    ],
)
async def test_a_selection_that_gives_no_row_is_refused_before_any_job(
    app: ForgeApp, who: Principal, filters: dict, options: dict, message: str
) -> None:
    await record_fixture(app)
    for question in ("Is there a student discount?", "Do you sell gift cards?"):
        await record(app, ALICE, tool_turn(question, "Yes."), thread="t-unrated")
    with pytest.raises(ForgeError) as refused:
        await app.services.flywheel.traces_to_dataset(who, TraceSelection.checked(**filters), **{"name": "out", **options})
    assert message in refused.value.message
    assert await app.jobs.repo.list(limit=10) == [] and leftovers(app) == []


async def test_only_the_callers_traces_unless_admin(app: ForgeApp) -> None:
    await record_fixture(app)
    bobs = TraceSelection.checked(tags=["bob"])
    with pytest.raises(InvalidArguments, match="no trace matches tags=\\['bob'\\] among the traces you can see"):
        await app.services.flywheel.traces_to_dataset(ALICE, bobs, name="x")
    for who in (BOB, ADMIN):  # bob's own trace, and an admin sees everyone's
        with pytest.raises(InvalidArguments, match="no DPO pair among the 1 traces that match tags=\\['bob'\\]"):
            await app.services.flywheel.traces_to_dataset(who, bobs, name="x", kind="dpo")
