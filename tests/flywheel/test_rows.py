"""Traces as rows, before any cleaning (forge_mcp.flywheel.rows), on traces recorded through
TraceService: which give an SFT row and why the others do not, the DPO pairs from corrections
and from differently rated answers to the same prompt, and what a row keeps of a trace."""

from __future__ import annotations

import json

from forge_mcp.app import ForgeApp
from forge_mcp.flywheel.rows import RowRules, chat, trace_rows
from forge_mcp.traces.selection import TraceSelection
from tests.flywheel.traces import (
    ALICE,
    CORRECTION,
    EMAIL,
    PASSWORD,
    PASSWORD_ANSWER,
    REFUND,
    SYSTEM,
    record,
    record_fixture,
    tool_turn,
)


async def test_good_outcomes_become_sft_rows_and_the_rest_say_why(app: ForgeApp) -> None:
    ids = await record_fixture(app)
    traces = await app.services.traces.select(ALICE, TraceSelection(), limit=100)
    built = trace_rows(traces, RowRules(min_rating=4))
    sft = {row.line: row.row["messages"] for row in built.sft}
    assert set(sft) == {ids[n] for n in ("password", "copy", "near", "email", "refund_good", "corrected")}
    assert built.dropped == {"below_threshold": 1, "no_rating": 2, "failed_outcome": 1}  # refund_bad; unrated, judged; failed
    # A tool-using turn keeps its system prompt, the call and its result; null content is left out.
    assert sft[ids["password"]] == [SYSTEM, {"role": "user", "content": PASSWORD},
                                     {"role": "assistant", "tool_calls": tool_turn(PASSWORD, "")[2]["tool_calls"]},
                                     {"role": "tool", "tool_call_id": "call_1", "content": "Article 12: password resets"},
                                     {"role": "assistant", "content": PASSWORD_ANSWER}]  # fmt: skip
    assert sft[ids["corrected"]][-1] == {"role": "assistant", "content": CORRECTION}  # the correction replaces "No."
    assert EMAIL not in json.dumps(sft) and "[EMAIL]" in sft[ids["email"]][1]["content"]  # masked when recorded
    assert {row.line: row.traces for row in built.sft}[ids["email"]] == (ids["email"],)


async def test_pairs_come_from_a_correction_and_from_a_better_rated_answer_to_the_same_prompt(app: ForgeApp) -> None:
    ids = await record_fixture(app)
    built = trace_rows(await app.services.traces.select(ALICE, TraceSelection(), limit=100), RowRules())
    pairs = {row.line: row for row in built.pairs}
    assert set(pairs) == {f"{ids['corrected']}:correction", f"{ids['refund_good']}>{ids['refund_bad']}"}
    assert built.pair_sources == {"correction": 1, "ratings": 1}
    corrected = pairs[f"{ids['corrected']}:correction"].row
    assert corrected == {"prompt": [SYSTEM, {"role": "user", "content": "Can I change my delivery address?"}],
                         "chosen": [{"role": "assistant", "content": CORRECTION}],
                         "rejected": [{"role": "assistant", "content": "No."}]}  # fmt: skip
    refund = pairs[f"{ids['refund_good']}>{ids['refund_bad']}"]
    assert refund.row["prompt"] == [SYSTEM, {"role": "user", "content": REFUND}]
    assert (refund.row["chosen"][0]["content"], refund.row["rejected"][0]["content"]) == ("Thirty days from delivery.", "Seven days.")
    assert refund.traces == (ids["refund_good"], ids["refund_bad"])
    # The password traces answer one prompt, all rated 5 (the same answer, or one word apart): no pair.
    assert not any(ids["password"] in line for line in pairs)


async def test_a_judges_grade_counts_only_when_asked_and_never_over_a_persons_rating(app: ForgeApp) -> None:
    ids = await record_fixture(app)
    low = await record(app, ALICE, tool_turn("Is the app free?", "It costs 5 euros."))
    await app.services.traces.feedback(ALICE, low, rating=2)
    await app.services.traces.record_judgement(ALICE, low, rating=5, reason="looks right", model="judge-1")  # refused: rated
    traces = await app.services.traces.select(ALICE, TraceSelection(), limit=100)
    counted = trace_rows(traces, RowRules(min_rating=4, judge_min_score=4))
    assert ids["judged"] in {row.line for row in counted.sft} and low not in {row.line for row in counted.sft}
    assert counted.dropped == {"below_threshold": 2, "no_rating": 1, "failed_outcome": 1}
    strict = trace_rows(traces, RowRules(min_rating=4, judge_min_score=5))
    assert ids["judged"] in {row.line for row in strict.sft}
    assert ids["judged"] not in {row.line for row in trace_rows(traces, RowRules(judge_min_score=None)).sft}


async def test_same_prompt_means_the_same_messages_whatever_the_tool_call_ids(app: ForgeApp) -> None:
    better = await record(app, ALICE, tool_turn("Which plan fits me?", "The Team plan.", call_id="call_a"))
    worse = await record(app, ALICE, tool_turn("Which plan fits me?", "No idea.", call_id="call_b"))
    other = await record(app, ALICE, tool_turn("Which plan fits me best?", "Basic.", call_id="call_c"))
    for trace_id, rating in ((better, 5), (worse, 2), (other, 1)):
        await app.services.traces.feedback(ALICE, trace_id, rating=rating)
    built = trace_rows(await app.services.traces.select(ALICE, TraceSelection(), limit=10), RowRules())
    assert [row.line for row in built.pairs] == [f"{better}>{worse}"]  # `other` asks something else
    prompt = built.pairs[0].row["prompt"]
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "tool"]  # the calls are part of the prompt
    assert prompt[2]["tool_calls"][0]["id"] == "call_a"  # the better trace's own


async def test_a_failed_trace_with_a_correction_is_an_sft_row_but_no_pair(app: ForgeApp) -> None:
    messages = [SYSTEM, {"role": "user", "content": "Cancel order 7."}, *tool_turn("Cancel order 7.", "")[2:4]]
    failed = await record(app, ALICE, messages, outcome="failed")
    await app.services.traces.feedback(ALICE, failed, correction="Order 7 is cancelled; the refund takes 3 days.")
    built = trace_rows(await app.services.traces.select(ALICE, TraceSelection(), limit=10), RowRules())
    assert [m["role"] for m in built.sft[0].row["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert built.sft[0].row["messages"][-1]["content"].startswith("Order 7 is cancelled") and built.pairs == []


def test_text_parts_are_joined_and_empty_fields_left_out() -> None:
    stored = [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
              {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                                     "function": {"name": "f", "arguments": "{}"}}]},
              {"role": "tool", "content": "", "tool_call_id": "c", "name": "f"}]  # fmt: skip
    assert chat(stored) == [{"role": "user", "content": "Hello\nthere"}, {k: v for k, v in stored[1].items() if v},
                            {"role": "tool", "content": "", "tool_call_id": "c", "name": "f"}]  # fmt: skip
