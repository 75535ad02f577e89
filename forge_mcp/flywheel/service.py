"""The flywheel for a caller: turn their traces (an admin's: everyone's, the TraceService's
ownership rule) into training datasets, have an LLM judge grade the ones nobody rated, and run
a whole cycle (configs/workflows/flywheel.yaml) as a workflow of theirs. Every check happens
here, before anything is queued: a selection that gives no row, no trace to grade, or a model
with no production version, is refused saying why and what to do."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Sequence
from typing import Literal

from forge_mcp.datasets.kinds import DatasetKind
from forge_mcp.datasets.prepare import PiiMode, PrepareOptions
from forge_mcp.datasets.repository import DatasetRepository
from forge_mcp.errors import ForgeError, InvalidArguments, NotFound
from forge_mcp.flywheel.cycle import (
    FLYWHEEL_DPO_WORKFLOW,
    FLYWHEEL_WORKFLOW,
    CycleSettings,
    check_held_out,
    last_cycle_end,
    production_and_base,
)
from forge_mcp.flywheel.held_out import asks_held_out, held_out_questions
from forge_mcp.flywheel.judging import JUDGE_KIND, MAX_JUDGED, JudgeArguments
from forge_mcp.flywheel.models import Selection, TraceSource, TracesToDatasetArguments
from forge_mcp.flywheel.rows import BELOW_THRESHOLD, FAILED_OUTCOME, NO_RATING, Row, RowRules, TraceRows, trace_rows
from forge_mcp.flywheel.sources import sources_root, write_sources
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import JobHandle
from forge_mcp.jobs.states import JobState
from forge_mcp.models.evaluation_service import EvaluationService, ScoringRequest
from forge_mcp.models.judge_settings import checked_judge
from forge_mcp.models.registry import ModelRegistry
from forge_mcp.references import check_name
from forge_mcp.security.principal import Principal
from forge_mcp.traces.models import TraceDetail
from forge_mcp.traces.selection import TraceSelection
from forge_mcp.traces.service import TraceService
from forge_mcp.workflows.service import WorkflowService
from forge_mcp.workspace import Workspace

TRACES_KIND = "traces_to_dataset"
MAX_TRACES = 10_000  # traces one traces_to_dataset reads at most
CYCLE_TRACES = 1_000  # what a cycle's traces_to_dataset step reads (its max_traces default)
MAX_SELECTED_CHARS = 256 * 2**20  # and their messages' JSON, all together: the server holds them while it builds rows
PAIRS_SUFFIX = "-pairs"
HELD_OUT = "held_out"  # a reason a trace gave no row: it asked a question of the held-out dataset
MAX_NAME_CHARS = 64  # a dataset's name (forge_mcp.references.check_name)
DatasetChoice = Literal["auto", "sft", "dpo"]
DedupMode = Literal["none", "exact", "near"]
RATING_FIX = "rate them with trace_feedback (or grade them with trace_judge and set judge_min_score), or lower min_rating"
PAIR_NEEDS = ("a pair needs a correction (trace_feedback) of an answered trace, or two answers to the same prompt "
              "rated differently")  # fmt: skip


class FlywheelService:
    def __init__(self, workspace: Workspace, traces: TraceService, engine: JobEngine, models: ModelRegistry,
                 datasets: DatasetRepository, evaluation: EvaluationService, workflows: WorkflowService) -> None:  # fmt: skip
        self._workspace = workspace
        self._traces = traces
        self._engine = engine
        self._models = models
        self._datasets = datasets
        self._evaluation = evaluation
        self._workflows = workflows

    async def traces_to_dataset(
        self,
        principal: Principal,
        selection: TraceSelection,
        *,
        name: str,
        kind: DatasetChoice = "auto",
        min_rating: int = 4,
        judge_min_score: int | None = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        dedup: DedupMode = "near",
        pii: PiiMode = "redact",
        max_traces: int = CYCLE_TRACES,
        held_out: str | None = None,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Builds the rows of the caller's selected traces here (refusing a selection that gives
        none), then starts the job that prepares and publishes them: SFT rows as `name`, DPO pairs
        as `name` (kind dpo) or `<name>-pairs` (kind auto: a dataset holds one kind of row).
        Traces that asked a question of the dataset `held_out` give no row."""
        check_name(name)
        pairs_name = name + PAIRS_SUFFIX if kind == "auto" else name
        if len(pairs_name) > MAX_NAME_CHARS:
            raise InvalidArguments(f"name: with kind auto the pairs go to {pairs_name[:20]}…{PAIRS_SUFFIX}, over "
                                   f"{MAX_NAME_CHARS} characters; use a name of at most {MAX_NAME_CHARS - len(PAIRS_SUFFIX)}")  # fmt: skip
        for field, value in (("min_rating", min_rating), ("judge_min_score", judge_min_score)):
            if value is not None and not 1 <= value <= 5:
                raise InvalidArguments(f"{field}: {value} is not between 1 (bad) and 5 (good)")
        if not 0 <= eval_fraction < 1:
            raise InvalidArguments(f"eval_fraction: {eval_fraction} must be at least 0 and below 1, e.g. 0.1")
        if not 1 <= max_traces <= MAX_TRACES:
            raise InvalidArguments(f"max_traces: {max_traces} is not between 1 and {MAX_TRACES:,}")
        traces = await self._traces.select(principal, selection, limit=max_traces, max_chars=MAX_SELECTED_CHARS)
        held_out_id, usable = await self._without_held_out(traces, held_out)
        rules = RowRules(min_rating=min_rating, judge_min_score=judge_min_score)
        built = await asyncio.to_thread(trace_rows, usable, rules)
        built.dropped[HELD_OUT] = len(traces) - len(usable)
        sft, pairs = (built.sft if kind != "dpo" else []), (built.pairs if kind != "sft" else [])
        if not sft and not pairs:
            raise InvalidArguments(_nothing_usable(kind, selection, len(traces), built, rules, held_out_id))
        notes = _notes(kind, name, pairs_name, built, sft, pairs)
        if built.dropped[HELD_OUT]:
            notes.append(f"{built.dropped[HELD_OUT]} traces asked a question of {held_out_id} (held out): they give no row, "
                         "so a comparison on it stays fair")  # fmt: skip
        total = await self._traces.count(principal, selection)
        if total > len(traces):
            notes.append(f"only the newest {len(traces):,} of the {total:,} matching traces were read (max_traces, and at "
                         f"most {MAX_SELECTED_CHARS // 2**20} MB of messages at once)")  # fmt: skip
        options = PrepareOptions(clean=True, dedup=dedup, pii=pii, test_fraction=eval_fraction, seed=seed)
        rows = {DatasetKind.MESSAGES: sft, DatasetKind.PREFERENCE: pairs}
        # The same key names the same folder (and finds the same job); without one, each request has its own.
        request = {"principal": principal.name, "names": [name, pairs_name], "options": options.model_dump(mode="json"),
                   "submission": idempotency_key or uuid.uuid4().hex}  # fmt: skip
        root = sources_root(self._workspace.root / "datasets")
        folder, written = await asyncio.to_thread(write_sources, root, rows, request)
        sources = [TraceSource(kind=kind_of, path=self._workspace.relative(folder / kind_of.value), rows=len(kind_rows),
                               output_name=name if kind_of is DatasetKind.MESSAGES else pairs_name)
                   for kind_of, kind_rows in rows.items() if kind_rows]  # fmt: skip
        arguments = TracesToDatasetArguments(
            folder=self._workspace.relative(folder), sources=sources, options=options,
            selection=Selection(filters=selection.given(), traces_selected=len(traces), max_traces=max_traces,
                                min_rating=min_rating, judge_min_score=judge_min_score, sft_dropped=_sft_dropped(built),
                                pairs=dict(built.pair_sources), held_out=held_out_id, notes=notes),
        )  # fmt: skip
        try:
            handle = await self._engine.submit(TRACES_KIND, arguments.model_dump(mode="json"), principal.name,
                                               idempotency_key=idempotency_key)  # fmt: skip
        except ForgeError:  # refused (a full queue, the key sent with another request): the rows it wrote are not needed
            if written:
                await asyncio.to_thread(shutil.rmtree, folder, True)
            raise
        if written and handle.deduplicated and handle.state is JobState.SUCCEEDED:  # the key's job published them already
            await asyncio.to_thread(shutil.rmtree, folder, True)
        return handle

    async def judge(
        self,
        principal: Principal,
        selection: TraceSelection,
        *,
        judge_url: str,
        judge_model: str,
        judge_api_key_env: str | None = None,
        limit: int = 100,
        regrade: bool = False,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Starts the job in which the judge grades up to `limit` of the caller's answered traces
        that nobody rated (and, unless `regrade`, the judge has not graded), newest first."""
        config = await checked_judge(judge_url, judge_model, judge_api_key_env)
        if config is None:
            raise InvalidArguments("judge_url: give the judge's OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
        if not 1 <= limit <= MAX_JUDGED:
            raise InvalidArguments(f"limit: {limit} is not between 1 and {MAX_JUDGED}")
        if selection.outcome not in (None, "answered"):
            raise InvalidArguments("outcome: the judge grades final answers, so answered traces only; leave outcome out")
        waiting = await self._traces.count_judge_candidates(principal, selection, regrade_before=time.time() if regrade else None)
        if waiting == 0:
            graded = "" if regrade else ", and not graded by the judge yet (regrade: true grades those again)"
            raise InvalidArguments(f"no trace to grade: none of the traces you can see{selection.matching()} is answered "
                                   f"and unrated{graded}; trace_list with the same filters shows them")  # fmt: skip
        arguments = JudgeArguments(selection=selection, judge=config, limit=limit, regrade=regrade,
                                   scopes=sorted(principal.scopes))  # fmt: skip
        return await self._engine.submit(JUDGE_KIND, arguments.model_dump(mode="json"), principal.name,
                                         idempotency_key=idempotency_key)  # fmt: skip

    async def run_cycle(
        self,
        principal: Principal,
        model: str,
        eval_dataset: str,
        settings: CycleSettings,
        *,
        since: float | None = None,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """Starts one cycle for `model` as the caller's workflow run: their traces from `since`
        (default: where their last cycle for it that trained stopped reading) until now; SFT and
        then DPO when they give at least `settings.min_pairs` pairs, else SFT only."""
        production, base = await production_and_base(self._models, model)
        info = await self._datasets.get(eval_dataset)
        check_held_out(info)
        await self._evaluation.check_scoring(ScoringRequest(dataset=info.id, limit=settings.limit,
                                                            max_new_tokens=settings.max_new_tokens))  # fmt: skip
        if since is None:
            since = await last_cycle_end(self._engine, principal, production.name)
        until = time.time()
        pairs = await self._pairs(principal, TraceSelection(since=since, until=until), settings, info.id)
        workflow = FLYWHEEL_DPO_WORKFLOW if pairs >= settings.min_pairs else FLYWHEEL_WORKFLOW
        inputs = {**settings.inputs(workflow), "model": production.name, "production": production.id, "base_model": base,
                  "eval_dataset": info.id, "until": until} | ({"since": since} if since is not None else {})  # fmt: skip
        return await self._workflows.run(principal, workflow, None, inputs, idempotency_key=idempotency_key)

    async def _pairs(self, principal: Principal, selection: TraceSelection, settings: CycleSettings, held_out: str) -> int:
        """The DPO pairs the cycle's traces give (as its traces_to_dataset step reads them, before dedup)."""
        traces = await self._traces.select(principal, selection, limit=CYCLE_TRACES, max_chars=MAX_SELECTED_CHARS)
        _, usable = await self._without_held_out(traces, held_out)
        rules = RowRules(min_rating=settings.min_rating, judge_min_score=settings.judge_min_score)
        return len((await asyncio.to_thread(trace_rows, usable, rules)).pairs)

    async def _without_held_out(self, traces: list[TraceDetail], held_out: str | None) -> tuple[str | None, list[TraceDetail]]:
        """(the held-out version's id, the traces that asked none of its questions)."""
        if held_out is None:
            return None, traces
        try:
            info = await self._datasets.get(held_out)
        except NotFound as exc:
            raise NotFound("held_out: " + exc.message.removeprefix("dataset: ")) from None
        questions = await asyncio.to_thread(held_out_questions, self._workspace.root / info.path)
        return info.id, [trace for trace in traces if not asks_held_out(trace, questions)]


def _sft_dropped(built: TraceRows) -> dict[str, int]:
    return {reason: built.dropped[reason] for reason in (NO_RATING, BELOW_THRESHOLD, FAILED_OUTCOME, HELD_OUT)}


def _nothing_usable(kind: DatasetChoice, selection: TraceSelection, selected: int, built: TraceRows, rules: RowRules,
                    held_out: str | None) -> str:  # fmt: skip
    if selected == 0 and not selection.given():
        return ("you have no traces yet (an admin key sees everyone's): trace_record stores them, and the chat operator "
                "records each of its turns")  # fmt: skip
    if selected == 0:
        return (f"no trace matches {selection.described()} among the traces you can see; trace_list with the same "
                "filters shows what there is")  # fmt: skip
    if kind == "dpo":
        return f"no DPO pair among the {selected} traces{selection.matching()}: {PAIR_NEEDS}; trace_list shows them"
    words = {NO_RATING: "have no rating", BELOW_THRESHOLD: f"are rated below min_rating {rules.min_rating}",
             FAILED_OUTCOME: "did not end answered (failed or cancelled) and have no correction",
             HELD_OUT: f"asked a question of {held_out} (held out)"}  # fmt: skip
    why = ", ".join(f"{count} {words[reason]}" for reason, count in built.dropped.most_common() if count)
    pairs = f", and no DPO pair either ({PAIR_NEEDS})" if kind == "auto" else ""
    return (f"none of the {selected} traces{selection.matching()} gives an SFT row: {why}{pairs}; {RATING_FIX}; "
            "trace_list shows them")  # fmt: skip


def _notes(kind: DatasetChoice, name: str, pairs_name: str, built: TraceRows, sft: Sequence[Row],
           pairs: Sequence[Row]) -> list[str]:  # fmt: skip
    if kind != "auto":
        return []
    if sft and pairs:
        return [f"SFT rows go to {name} (messages) and DPO pairs to {pairs_name} (preference): a dataset holds one "
                "kind of row"]  # fmt: skip
    if sft:
        return [f"no DPO pair ({PAIR_NEEDS}): only {name} (SFT) is made"]
    why = ", ".join(f"{count} {reason}" for reason, count in built.dropped.most_common() if count)
    return [f"no SFT row ({why}; {RATING_FIX}): only {pairs_name} (DPO pairs) is made"]
