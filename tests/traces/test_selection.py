"""TraceService.select, what traces_to_dataset and trace_judge read: whole traces of the caller
(an admin: everyone's) matching trace_list's filters, newest first, a page at a time, bounded
by a count and by the size of their messages; and the filters as one value (TraceSelection)."""

from __future__ import annotations

import json

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import InvalidArguments
from forge_mcp.security.principal import Principal
from forge_mcp.traces import repository
from forge_mcp.traces.models import TraceIn
from forge_mcp.traces.selection import TraceSelection

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
ADMIN = Principal("root", frozenset({"admin"}))


async def recorded(app: ForgeApp, who: Principal, question: str, **fields: object) -> str:
    trace = TraceIn.checked({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": "Ok."}],
                             **fields})  # fmt: skip
    return (await app.services.traces.record(who, trace, source="chat")).id


async def test_select_reads_pages_newest_first_within_a_count_and_a_size(app: ForgeApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "DETAIL_PAGE", 3)
    ids = [await recorded(app, ALICE, f"Question {i} " + "x" * 100, tags=["a"] if i % 2 else []) for i in range(8)]
    await recorded(app, BOB, "Bob's question")
    traces = app.services.traces
    everything = await traces.select(ALICE, TraceSelection(), limit=100)
    assert [t.id for t in everything] == ids[::-1] and everything[0].messages[1] == {"role": "assistant", "content": "Ok."}
    assert [t.id for t in await traces.select(ALICE, TraceSelection(), limit=5)] == ids[::-1][:5]
    assert [t.id for t in await traces.select(ALICE, TraceSelection(tags=["a"]), limit=100)] == ids[1::2][::-1]
    assert len(await traces.select(ADMIN, TraceSelection(), limit=100)) == 9
    size = len(json.dumps(everything[0].messages))  # as the row stores them
    assert len(await traces.select(ALICE, TraceSelection(), limit=100, max_chars=2 * size + 1)) == 3  # the one over it too
    assert len(await traces.select(ALICE, TraceSelection(), limit=100, max_chars=1)) == 1  # never none
    assert await traces.count(ALICE, TraceSelection(tags=["a"])) == 4


def test_a_selection_is_checked_and_described() -> None:
    selection = TraceSelection.checked(source="chat", tags=["b", "b"], since=10.0, until=None)
    assert selection.given() == {"since": 10.0, "source": "chat", "tags": ["b"]}
    assert selection.matching() == " that match since=10.0, source='chat', tags=['b']"
    assert TraceSelection().matching() == "" and TraceSelection().given() == {}
    with pytest.raises(InvalidArguments, match="since: 5.0 is not before until"):
        TraceSelection.checked(since=5.0, until=5.0)
    with pytest.raises(InvalidArguments, match=r"tags\[0\]: 'Bad Tag' is not a slug"):
        TraceSelection.checked(tags=["Bad Tag"])
