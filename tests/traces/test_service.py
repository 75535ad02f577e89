"""TraceService on a real workspace database, called in-process as the chat operator calls it:
PII masked before anything is stored and counted, every list filter, pages, feedback,
idempotent recording, and whose traces a caller sees and rates."""

from __future__ import annotations

import json
from typing import Any

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import Conflict, InvalidArguments, NotFound
from forge_mcp.security.principal import Principal
from forge_mcp.traces.models import TraceIn
from forge_mcp.traces.service import TraceService
from tests.traces.test_trace_in import ANSWER, CALL, RESULT, USER

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))
EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 0199"
KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234"


def trace(question: str = "How do I reset my password?", **fields: Any) -> TraceIn:
    return TraceIn.checked({"messages": [{"role": "user", "content": question}, ANSWER], **fields})


async def test_pii_is_masked_before_it_is_stored_and_counted_by_kind(app: ForgeApp) -> None:
    traces = app.services.traces
    arguments = json.dumps({"email": EMAIL, "limit": 3})
    lookup = {
        **CALL,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "find_customer", "arguments": arguments}}
        ],
    }
    recorded = await traces.record(ALICE, TraceIn.checked({
        "messages": [{"role": "user", "content": f"I am {EMAIL}, call me on {PHONE}. My key is {KEY}"}, lookup,
                     {**RESULT, "content": [{"type": "text", "text": f"customer {EMAIL} found"}]}, ANSWER],
        "metadata": {"reporter": EMAIL, "attempt": 2},
    }), source="chat")  # fmt: skip
    assert recorded.pii == {"email": 4, "phone": 1, "secret": 1} and recorded.redacted
    assert (recorded.message_count, recorded.tool_call_count) == (4, 1)
    detail = await traces.get(ALICE, recorded.id)
    assert detail.messages[0]["content"] == "I am [EMAIL], call me on [PHONE]. My key is [SECRET]"
    stored_call = detail.messages[1]["tool_calls"][0]["function"]
    assert json.loads(stored_call["arguments"]) == {"email": "[EMAIL]", "limit": 3}  # still a JSON object
    assert detail.messages[2]["content"] == [{"type": "text", "text": "customer [EMAIL] found"}]
    assert detail.metadata == {"reporter": "[EMAIL]", "attempt": 2} and detail.pii == recorded.pii
    assert detail.preview.startswith("I am [EMAIL], call me on [PHONE]")
    row = await app.store.fetchone("SELECT * FROM traces WHERE id = ?", (recorded.id,))
    assert row is not None
    stored = json.dumps(dict(row))
    assert EMAIL not in stored and "415 555" not in stored and KEY not in stored


async def test_a_clean_trace_is_stored_as_sent(app: ForgeApp) -> None:
    sent = TraceIn.checked({"messages": [USER, CALL, RESULT, ANSWER], "model": "support-bot@v2", "latency_ms": 840,
                            "usage": {"prompt_tokens": 120, "completion_tokens": 30}, "thread": "th-1", "tags": ["weather"]})  # fmt: skip
    recorded = await app.services.traces.record(ALICE, sent, source="a2a")
    assert recorded.pii == {} and not recorded.redacted and recorded.id.startswith("tr_")
    detail = await app.services.traces.get(ALICE, recorded.id)
    assert detail.messages == [USER, CALL, RESULT, ANSWER]
    assert (detail.source, detail.principal, detail.thread, detail.model, detail.outcome) == (
        "a2a",
        "alice",
        "th-1",
        "support-bot@v2",
        "answered",
    )
    assert (detail.latency_ms, detail.prompt_tokens, detail.completion_tokens) == (840, 120, 30)
    assert (
        detail.preview == USER["content"]
        and detail.tags == ["weather"]
        and detail.rating is None
        and not detail.corrected
    )


async def record_many(traces: TraceService) -> dict[str, str]:
    """Five of alice's traces, oldest first, that differ in every filtered field."""
    specs = {
        "one": ("chat", trace("one", model="m1", tags=["billing", "refund"], thread="t1")),
        "two": ("chat", trace("two", model="m2", tags=["billing"], thread="t1")),
        "three": ("a2a", TraceIn.checked({"messages": [USER, CALL], "outcome": "failed", "model": "m1"})),
        "four": ("external", trace("four", model="m1", tags=["refund"])),
        "five": ("chat", TraceIn.checked({"messages": [USER], "outcome": "cancelled", "tags": ["billing", "refund"]})),
    }
    return {name: (await traces.record(ALICE, spec, source=source)).id for name, (source, spec) in specs.items()}


async def test_every_filter_narrows_the_list_newest_first(app: ForgeApp) -> None:
    traces = app.services.traces
    ids = await record_many(traces)
    await traces.feedback(ALICE, ids["one"], rating=5)
    await traces.feedback(ALICE, ids["two"], rating=2)
    await traces.feedback(ALICE, ids["four"], labels=["wrong-tool"])
    listed = await traces.list(ALICE)
    names = {v: k for k, v in ids.items()}
    created = {names[t.id]: t.created_at for t in listed.traces}

    async def found(**filters: Any) -> list[str]:
        return [names[t.id] for t in (await traces.list(ALICE, **filters)).traces]

    assert [names[t.id] for t in listed.traces] == ["five", "four", "three", "two", "one"] and listed.total == 5
    assert await found(source="chat") == ["five", "two", "one"]
    assert await found(model="m1") == ["four", "three", "one"]
    assert await found(outcome="failed") == ["three"]
    assert await found(thread="t1") == ["two", "one"]
    assert await found(tags=["billing"]) == ["five", "two", "one"]
    assert await found(tags=["billing", "refund"]) == ["five", "one"]  # every tag must be on the trace
    assert await found(since=created["two"]) == ["five", "four", "three", "two"]
    assert await found(until=created["two"]) == ["one"]
    assert await found(since=created["two"], until=created["four"]) == ["three", "two"]
    assert await found(min_rating=4) == ["one"]
    assert await found(max_rating=3) == ["two"]
    assert await found(has_feedback=True) == ["four", "two", "one"]
    assert await found(has_feedback=False) == ["five", "three"]
    assert await found(source="chat", model="m1", tags=["refund"]) == ["one"]
    summary = (await traces.list(ALICE, outcome="failed")).traces[0]
    assert (summary.message_count, summary.tool_call_count, summary.preview) == (2, 1, USER["content"])
    four = (await traces.list(ALICE, source="external")).traces[0]
    assert four.labels == ["wrong-tool"] and four.rating is None and four.feedback_at is not None


async def test_pages_follow_the_cursor_to_the_end(app: ForgeApp) -> None:
    traces = app.services.traces
    ids = await record_many(traces)
    pages, cursor = [], None
    while True:
        page = await traces.list(ALICE, limit=2, cursor=cursor)
        assert page.total == 5
        pages.append([t.id for t in page.traces])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [[ids["five"], ids["four"]], [ids["three"], ids["two"]], [ids["one"]]]
    filtered = await traces.list(ALICE, tags=["refund"], limit=1, cursor=ids["five"])
    assert (
        [t.id for t in filtered.traces] == [ids["four"]] and filtered.next_cursor == ids["four"] and filtered.total == 3
    )
    with pytest.raises(InvalidArguments, match=r"^cursor: 'tr_00000000' is not a trace from an earlier page"):
        await traces.list(ALICE, cursor="tr_00000000")


@pytest.mark.parametrize(("filters", "message"), [
    ({"since": 20.0, "until": 10.0}, "since: 20.0 is not before until (10.0)"),
    ({"min_rating": 4, "max_rating": 2}, "min_rating: 4 is above max_rating (2)"),
    ({"min_rating": 0}, "min_rating: 0 is not between 1 (bad) and 5 (good)"),
    ({"tags": ["Billing!"]}, "tags[0]: 'Billing!' is not a slug"),
    ({"limit": 0}, "limit: 0 is not between 1 and 200"),
])  # fmt: skip
async def test_contradictory_filters_are_refused_naming_the_field(
    app: ForgeApp, filters: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await app.services.traces.list(ALICE, **filters)
    assert caught.value.message.startswith(message)


async def test_feedback_rates_corrects_and_labels_and_keeps_what_is_not_given(app: ForgeApp) -> None:
    traces = app.services.traces
    trace_id = (await traces.record(ALICE, trace(), source="chat")).id
    rated = await traces.feedback(ALICE, trace_id, rating=2)
    assert (rated.rating, rated.correction, rated.labels) == (2, None, [])
    corrected = await traces.feedback(ALICE, trace_id, correction=f"Open Settings > Security, or mail {EMAIL}.",
                                      labels=["wrong-answer", "wrong-answer", "security"])  # fmt: skip
    assert corrected.rating == 2  # kept
    assert corrected.correction == "Open Settings > Security, or mail [EMAIL]." and corrected.pii == {"email": 1}
    assert corrected.labels == ["wrong-answer", "security"] and corrected.feedback_at >= rated.feedback_at
    relabeled = await traces.feedback(ALICE, trace_id, labels=[])
    assert relabeled.labels == [] and relabeled.correction == corrected.correction
    detail = await traces.get(ALICE, trace_id)
    assert (detail.rating, detail.correction, detail.corrected) == (2, corrected.correction, True)


@pytest.mark.parametrize(("given", "message"), [
    ({}, "rating, correction or labels: give at least one"),
    ({"rating": 6}, "rating: 6 is not between 1 (bad) and 5 (good)"),
    ({"correction": "  "}, "correction: it is empty"),
    ({"labels": ["ok", "Not OK"]}, "labels[1]: 'Not OK' is not a slug"),
])  # fmt: skip
async def test_feedback_that_says_nothing_or_too_much_is_refused(
    app: ForgeApp, given: dict[str, Any], message: str
) -> None:
    trace_id = (await app.services.traces.record(ALICE, trace(), source="chat")).id
    with pytest.raises(InvalidArguments) as caught:
        await app.services.traces.feedback(ALICE, trace_id, **given)
    assert caught.value.message.startswith(message)
    assert (await app.services.traces.get(ALICE, trace_id)).feedback_at is None


async def test_an_unknown_trace_is_not_found_and_says_where_to_look(app: ForgeApp) -> None:
    for call in (
        app.services.traces.get(ALICE, "tr_0123456789"),
        app.services.traces.feedback(ALICE, "tr_0123456789", rating=3),
    ):
        with pytest.raises(
            NotFound, match=r"^trace_id: no trace 'tr_0123456789'; trace_list shows the traces you can see$"
        ):
            await call


async def test_a_caller_sees_and_rates_only_their_own_traces_and_an_admin_all(app: ForgeApp) -> None:
    traces = app.services.traces
    mine = (await traces.record(ALICE, trace("alice's"), source="chat")).id
    theirs = (await traces.record(BOB, trace("bob's"), source="chat")).id
    assert [t.id for t in (await traces.list(ALICE)).traces] == [mine]
    assert [t.id for t in (await traces.list(BOB)).traces] == [theirs]
    assert [t.id for t in (await traces.list(ADMIN)).traces] == [theirs, mine] and (await traces.list(ADMIN)).total == 2
    with pytest.raises(NotFound, match=f"trace_id: no trace '{theirs}'"):
        await traces.get(ALICE, theirs)
    with pytest.raises(NotFound, match=f"trace_id: no trace '{theirs}'"):
        await traces.feedback(ALICE, theirs, rating=1)
    with pytest.raises(InvalidArguments, match="^cursor: "):
        await traces.list(ALICE, cursor=theirs)  # someone else's trace is no cursor either
    assert (await traces.get(BOB, theirs)).rating is None  # alice's rating did not land
    assert (await traces.feedback(ADMIN, theirs, rating=4)).rating == 4
    assert (await traces.get(ADMIN, mine)).principal == "alice"


async def test_an_idempotency_key_stores_a_trace_once(app: ForgeApp) -> None:
    traces = app.services.traces
    first = await traces.record(ALICE, trace(f"mail {EMAIL}"), source="chat", idempotency_key="turn-1")
    again = await traces.record(ALICE, trace(f"mail {EMAIL}"), source="chat", idempotency_key="turn-1")
    assert again == first and first.pii == {"email": 1}
    assert (await traces.list(ADMIN)).total == 1
    with pytest.raises(
        Conflict, match=f"^idempotency_key: 'turn-1' was sent before with another trace \\({first.id}\\)"
    ):
        await traces.record(ALICE, trace("something else"), source="chat", idempotency_key="turn-1")
    other = await traces.record(
        BOB, trace(f"mail {EMAIL}"), source="chat", idempotency_key="turn-1"
    )  # keys are per caller
    assert other.id != first.id and (await traces.list(ADMIN)).total == 2


async def test_a_source_must_be_a_short_slug(app: ForgeApp) -> None:
    with pytest.raises(InvalidArguments, match=r"^source: 'My Agent' is not a source name"):
        await app.services.traces.record(ALICE, trace(), source="My Agent")
    assert (await app.services.traces.list(ADMIN)).total == 0
