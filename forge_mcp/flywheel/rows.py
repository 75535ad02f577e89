"""Traces as training rows, before any cleaning: an SFT row (the `messages` kind) for each trace
with a good outcome, and DPO pairs (the `preference` kind) from corrections and from
differently rated answers to the same prompt. Each row says which traces it came from; each
trace that gives no SFT row says why.

A good outcome: a correction (the answer a person says it should have given, which then
replaces the final answer), else an answered trace rated at least `min_rating` by a person,
else, when `judge_min_score` is given and nobody rated it, graded at least that by the judge.
System prompts, tool calls and tool results stay in the rows, as the trace had them.

The prompt of a pair is the conversation before the final answer (the trailing assistant
messages left out), so a tool-using agent's calls and their results are part of it; two
traces answer the same prompt when those messages say the same (tool-call ids aside).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forge_mcp.traces.models import TraceDetail

NO_RATING = "no_rating"
BELOW_THRESHOLD = "below_threshold"
FAILED_OUTCOME = "failed_outcome"  # failed or cancelled, and no correction
FROM_CORRECTION = "correction"
FROM_RATINGS = "ratings"
_KEPT = ("name", "tool_calls", "tool_call_id")


@dataclass(frozen=True)
class RowRules:
    min_rating: int = 4  # a person's rating that makes an answer good enough to learn from
    judge_min_score: int | None = None  # a judge's grade that does, for traces nobody rated; None: grades do not count


@dataclass(frozen=True)
class Row:
    line: str  # where it came from, kept in the dataset: 'tr_…', 'tr_…:correction', 'tr_better>tr_worse'
    row: dict[str, Any]
    traces: tuple[str, ...]


@dataclass
class TraceRows:
    sft: list[Row] = field(default_factory=list)
    pairs: list[Row] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # traces that gave no SFT row, by reason
    pair_sources: Counter[str] = field(default_factory=Counter)  # pairs by where they came from


def trace_rows(traces: Sequence[TraceDetail], rules: RowRules) -> TraceRows:
    """The rows of `traces` (newest first: among equally rated answers the newest is chosen)."""
    out = TraceRows()
    for trace in traces:
        reason = _no_sft_row(trace, rules)
        if reason is not None:
            out.dropped[reason] += 1
            continue
        messages = trace.messages if trace.correction is None else [*_prompt(trace.messages), _answer(trace.correction)]
        out.sft.append(Row(trace.id, {"messages": chat(messages)}, (trace.id,)))
    for source, pairs in ((FROM_CORRECTION, _correction_pairs(traces)), (FROM_RATINGS, _rating_pairs(traces, rules))):
        out.pairs += pairs
        out.pair_sources[source] += len(pairs)
    return out


def chat(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored trace messages as a `messages` row holds them: text parts joined into a string,
    null content left out (an assistant message that only calls tools), the rest as recorded."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "\n".join(part.get("text", "") for part in content if isinstance(part, dict))
        converted = {"role": message["role"], **({"content": content} if content is not None else {})}
        out.append(converted | {key: message[key] for key in _KEPT if message.get(key)})
    return out


def _no_sft_row(trace: TraceDetail, rules: RowRules) -> str | None:
    if trace.correction is not None:
        return None
    if trace.outcome != "answered":
        return FAILED_OUTCOME
    if trace.rating is not None:
        return None if trace.rating >= rules.min_rating else BELOW_THRESHOLD
    if rules.judge_min_score is not None and trace.judge_rating is not None:
        return None if trace.judge_rating >= rules.judge_min_score else BELOW_THRESHOLD
    return NO_RATING


def _correction_pairs(traces: Sequence[TraceDetail]) -> list[Row]:
    """chosen: the correction; rejected: the answer the trace ended with (when it ended with one)."""
    pairs = []
    for trace in traces:
        answer = final_answer(trace)
        if trace.correction is None or answer is None or _same(answer, trace.correction):
            continue
        pairs.append(Row(f"{trace.id}:correction", _pair(_prompt(trace.messages), trace.correction, answer), (trace.id,)))
    return pairs


def _rating_pairs(traces: Sequence[TraceDetail], rules: RowRules) -> list[Row]:
    """For each prompt answered more than once: the best-rated answer against each worse-rated one."""
    groups: dict[str, list[tuple[int, TraceDetail, str]]] = defaultdict(list)
    for trace in traces:
        score, answer = _score(trace, rules), final_answer(trace)
        if score is not None and answer is not None:
            groups[_prompt_key(_prompt(trace.messages))].append((score, trace, answer))
    pairs = []
    for members in groups.values():
        best_score, best, best_answer = max(members, key=lambda member: member[0])  # the first (newest) of the best
        seen = {_normalised(best_answer)}
        for score, trace, answer in members:
            if score < best_score and _normalised(answer) not in seen:
                seen.add(_normalised(answer))
                row = _pair(_prompt(best.messages), best_answer, answer)
                pairs.append(Row(f"{best.id}>{trace.id}", row, (best.id, trace.id)))
    return pairs


def _score(trace: TraceDetail, rules: RowRules) -> int | None:
    """A person's rating, else the judge's grade when grades count."""
    if trace.rating is not None:
        return trace.rating
    return trace.judge_rating if rules.judge_min_score is not None else None


def final_answer(trace: TraceDetail) -> str | None:
    """The text of the assistant message an answered trace ends with."""
    last = trace.messages[-1]
    if trace.outcome != "answered" or last["role"] != "assistant":
        return None
    text = chat([last])[0].get("content", "")
    return text if text.strip() else None


def _prompt(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation before the final answer: without its trailing assistant messages."""
    end = len(messages)
    while end > 0 and messages[end - 1]["role"] == "assistant":
        end -= 1
    return list(messages[:end])


def _pair(prompt: Sequence[dict[str, Any]], chosen: str, rejected: str) -> dict[str, Any]:
    return {"prompt": chat(prompt), "chosen": [_answer(chosen)], "rejected": [_answer(rejected)]}


def _answer(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def _prompt_key(prompt: Sequence[dict[str, Any]]) -> str:
    """What a prompt says: each message's role, text, name and tool calls (name, arguments), not the call ids."""
    said = []
    for message in chat(prompt):
        calls = [[call["function"]["name"], _arguments(call["function"]["arguments"])] for call in message.get("tool_calls", ())]
        said.append([message["role"], _normalised(message.get("content") or ""), message.get("name"), calls])
    return json.dumps(said, sort_keys=True, ensure_ascii=False)


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _same(a: str, b: str) -> bool:
    return _normalised(a) == _normalised(b)
