"""A fixture of traces, recorded through TraceService as the operator records them, and what
traces_to_dataset should make of them (min_rating 4, judge grades not counted):

- password: a tool-using turn (system prompt, a call, its result, the answer) rated 5; `copy`
  is the very same conversation recorded again (an exact duplicate once cleaned) and `near`
  the same prompt with an answer one word apart (a near duplicate), both rated 5;
- email: a user message with an email address (masked at recording), rated 4;
- refund_good / refund_bad: the same prompt answered twice, rated 5 and 1: an SFT row from the
  good one, the bad one below the threshold, and a DPO pair between them;
- corrected: rated 2 with a correction: an SFT row ending with the correction, and a DPO pair;
- unrated, judged (unrated, later graded 5 by a judge), failed (outcome failed);
- bob's: rated 5, but not alice's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from forge_mcp.app import ForgeApp
from forge_mcp.security.principal import Principal
from forge_mcp.traces.models import TraceIn

ALICE = Principal("alice", frozenset({"train"}))
BOB = Principal("bob", frozenset({"train"}))
EMAIL = "jane.doe@example.com"
SYSTEM = {"role": "system", "content": "You are the support assistant of Acme. Be brief."}
PASSWORD = "How do I reset my password?"
PASSWORD_ANSWER = ("Open Settings, choose Security, then Reset password; we send a link to the address on the "
                   "account, and the link stays valid for one hour, after which you can ask for another one from "
                   "the same page whenever you like.")  # fmt: skip
REFUND = "How long is the refund window?"
CORRECTION = "You can change the delivery address until the parcel ships, under Orders."


def tool_turn(question: str, answer: str, call_id: str = "call_1") -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function", "function": {"name": "search_help", "arguments": json.dumps({"q": question})}}
    return [SYSTEM, {"role": "user", "content": question}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "content": "Article 12: password resets"},
            {"role": "assistant", "content": answer}]  # fmt: skip


def chat(question: str, answer: str) -> list[dict[str, Any]]:
    return [SYSTEM, {"role": "user", "content": question}, {"role": "assistant", "content": answer}]


@dataclass
class Recorded:
    ids: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return self.ids[name]


async def record(app: ForgeApp, principal: Principal, messages: list[dict[str, Any]], **fields: Any) -> str:
    return (await app.services.traces.record(principal, TraceIn.checked({"messages": messages, **fields}), source="chat")).id


async def record_fixture(app: ForgeApp) -> Recorded:
    traces = app.services.traces
    ids: dict[str, str] = {}
    # Oldest first: trace_list and traces_to_dataset read newest first.
    ids["password"] = await record(app, ALICE, tool_turn(PASSWORD, PASSWORD_ANSWER), tags=["support"])
    ids["copy"] = await record(app, ALICE, tool_turn(PASSWORD, PASSWORD_ANSWER), tags=["support"])
    ids["near"] = await record(app, ALICE, tool_turn(PASSWORD, PASSWORD_ANSWER.replace("whenever", "when")), tags=["support"])
    ids["email"] = await record(app, ALICE, chat(f"My email {EMAIL} gets no newsletter.", "You are subscribed now."))
    ids["refund_bad"] = await record(app, ALICE, chat(REFUND, "Seven days."))
    ids["refund_good"] = await record(app, ALICE, chat(REFUND, "Thirty days from delivery."))
    ids["corrected"] = await record(app, ALICE, chat("Can I change my delivery address?", "No."))
    ids["unrated"] = await record(app, ALICE, chat("Do you ship to Norway?", "Yes, in five days."))
    ids["judged"] = await record(app, ALICE, chat("Do you ship to Chile?", "Yes, in ten days."))
    ids["failed"] = await record(app, ALICE, [SYSTEM, {"role": "user", "content": "Cancel my order."}], outcome="failed")
    ids["bob"] = await record(app, BOB, chat("Where is my parcel, says Bob?", "On its way."), tags=["bob"])
    for name, rating in (("password", 5), ("copy", 5), ("near", 5), ("email", 4), ("refund_bad", 1), ("refund_good", 5),
                         ("bob", 5)):  # fmt: skip
        await traces.feedback(BOB if name == "bob" else ALICE, ids[name], rating=rating)
    await traces.feedback(ALICE, ids["corrected"], rating=2, correction=CORRECTION)
    assert await traces.record_judgement(ALICE, ids["judged"], rating=5, reason="correct", model="judge-1")
    return Recorded(ids)
