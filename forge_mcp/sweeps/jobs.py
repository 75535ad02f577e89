"""The sweep orchestration kind: an Optuna study whose trials are `train` jobs, its children.

It reads top to bottom: open the study (a journal file in the sweep's run folder), pick up
the trials a previous server left (re-attach to their jobs), then until n_trials trials have
finished: start trials while fewer than `parallel` run, feed each running trial's new eval
losses to Optuna (stopping the job of a trial it prunes), and settle the trials whose jobs
ended. With an evaluation objective a trained trial is scored by an `evaluate` job, its second
step, before it completes.

Durable by construction: each decision is written to the study before it is acted on (a trial
is asked before its job starts, pruned before its job is stopped), and each trial's job is
the step `trial-<number>`, so a restarted sweep finds every job its trials started and never
starts one twice (orchestration/context.py)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from forge_mcp.errors import ForgeError
from forge_mcp.jobs import constants as C
from forge_mcp.jobs.models import Job
from forge_mcp.jobs.states import JobState
from forge_mcp.models.evaluation_service import EVALUATE_KIND, ScoringRequest
from forge_mcp.orchestration.context import Child, OrchestrationContext
from forge_mcp.orchestration.kinds import OrchestrationKind
from forge_mcp.sweeps import SWEEP_KIND
from forge_mcp.sweeps import study as S
from forge_mcp.sweeps.request import SweepSettings
from forge_mcp.sweeps.space import SearchSpace
from forge_mcp.training.service import TRAIN_KIND

if TYPE_CHECKING:
    import optuna

INTERMEDIATE = "eval_loss"  # the metric a training job logs that Optuna's pruners see


class TrialSummary(BaseModel):
    number: int
    state: str = Field(description="running, complete, pruned or failed")
    params: dict[str, Any]
    value: float | None = Field(description="The objective, for a complete trial")
    job_id: str | None = Field(description="The trial's train job")
    pruned_at_step: int | None = None
    steps: int | None = Field(None, description="Optimizer steps the trial's job ran")
    error: str | None = None


class SweepResult(BaseModel):
    objective: str
    direction: str
    best_trial: int = Field(description="The best complete trial's number")
    best_value: float
    best_params: dict[str, Any]
    best_job_id: str = Field(description="Its train job: model_register accepts it, or this sweep's id")
    best_adapter: str = Field(description="Its adapter (or weights) folder")
    complete: int
    pruned: int
    failed: int
    total_steps: int = Field(description="Optimizer steps every trial ran, together")
    stopped_by: str | None = Field(None, description="The budget that ended the sweep early, if one did")
    trials: list[TrialSummary]


@dataclass
class Running:
    """A trial whose job (or whose evaluation job) has not ended yet."""

    number: int
    trial_id: int
    train: Child
    reported_step: float  # the newest step whose eval loss Optuna has
    evaluation: Child | None = None
    steps: int | None = None


@dataclass
class SweepLoop:
    ctx: OrchestrationContext
    settings: SweepSettings
    space: SearchSpace
    study: optuna.Study
    running: dict[int, Running] = field(default_factory=dict)
    stopping: dict[int, tuple[Child, int]] = field(default_factory=dict)  # pruned trials' jobs being canceled, pruning steps
    stopped_by: str | None = None

    async def run(self) -> SweepResult:
        await self.recover()
        self.report_progress()
        while True:
            while self.may_start():
                await self.start_trial()
            if not self.running and not self.stopping:
                break
            watched = [r.evaluation or r.train for r in self.running.values()] + [child for child, _ in self.stopping.values()]
            await self.ctx.wait_any(watched, C.WAIT_POLL_S)
            for trial in list(self.running.values()):
                await self.follow(trial)
            await self.settle_stopped()
        return await self.result()

    # the trials a previous server left ------------------------------------------------------

    async def recover(self) -> None:
        for view in await self.views():
            child = await self.ctx.existing_child(step_name(view.number))
            if view.state == "pruned" and child is not None and not (await self.ctx.child_job(child)).terminal:
                await self.ctx.cancel_child(child)  # pruned, then cut off before its job was stopped
                self.stopping[view.number] = (child, view.pruned_at_step or 0)
            if view.state != "running":
                continue
            if child is None and len(view.params) < len(self.space.parameters):
                # Asked, then cut off before its parameters were written: it never ran and is not counted.
                await self.tell(view.number, "fail", attrs={S.ATTR_ABANDONED: True, S.ATTR_ERROR: "cut off by a "
                                                            "server restart before it started; not counted"})  # fmt: skip
                continue
            if child is None:
                child = await self.start_job(view.number, view.params)
                if child is None:
                    continue
            else:
                self.ctx.log(f"trial {view.number}: re-attached to job {child.job_id}")
            trial = Running(view.number, view.trial_id, child, reported_step=view.last_step or 0)
            trial.evaluation = await self.ctx.existing_child(step_name(view.number, "eval"))
            self.running[view.number] = trial

    # starting trials ------------------------------------------------------------------------

    def may_start(self) -> bool:
        if len(self.running) >= self.settings.parallel:
            return False
        if self.counted() + len(self.running) >= self.settings.n_trials:
            return False
        budget = self.budget_spent()
        if budget is not None:
            if self.stopped_by is None:
                self.stopped_by = budget
                self.ctx.log(f"budget reached ({budget}): no new trial; the running ones finish")
            return False
        return True

    async def start_trial(self) -> None:
        distributions = S.distributions(self.space)
        trial = await asyncio.to_thread(self.study.ask, distributions)
        params = S.decode_params(self.space, trial.params)
        child = await self.start_job(trial.number, params)
        if child is not None:
            self.running[trial.number] = Running(trial.number, trial._trial_id, child, reported_step=0)

    async def start_job(self, number: int, params: dict[str, Any]) -> Child | None:
        """The trial's train job, planned as train_start plans; a trial whose spec is refused fails
        (its reason recorded) instead of ending the sweep."""
        try:
            arguments = await self.ctx.services.training.job_arguments({**self.settings.spec, **params},
                                                                       compute=self.settings.compute)  # fmt: skip
            if arguments["plan"]["device"] == "cpu" and self.settings.parallel > 1:
                # Trials at once share the cores: each gets its part, not all of them.
                arguments["cpu_threads"] = max(1, (os.cpu_count() or 1) // self.settings.parallel)
            child = await self.ctx.start_child(TRAIN_KIND, arguments, step=step_name(number), compute=arguments["plan"]["compute"])
        except ForgeError as exc:
            self.ctx.log(f"trial {number}: not started: {exc.message}")
            await self.tell(number, "fail", attrs={S.ATTR_ERROR: exc.message})
            return None
        await self.set_attr(number, S.ATTR_JOB, child.job_id)
        self.ctx.log(f"trial {number}: job {child.job_id} with {params}")
        return child

    # following a running trial --------------------------------------------------------------

    async def follow(self, trial: Running) -> None:
        if trial.evaluation is not None:
            await self.follow_evaluation(trial)
            return
        job = await self.ctx.child_job(trial.train)
        # Only a job still training can be pruned: one that finished is complete, whatever its last eval says.
        prunable = self.settings.pruner != "none" and not job.terminal
        if await self.report_losses(trial, prunable, job.progress.total):
            return
        if job.state is JobState.SUCCEEDED:
            trial.steps = int((job.result or {}).get("steps") or 0)
            if self.settings.objective == "eval_loss":
                result = job.result or {}
                value = result.get("final_eval_loss", result.get("best_eval_loss"))
                await self.complete(trial, value, f"job {job.id} logged no eval loss")
            else:
                await self.start_evaluation(trial, job)
        elif job.state in (JobState.FAILED, JobState.CANCELED):
            await self.fail(trial, job)

    async def report_losses(self, trial: Running, prunable: bool, total_steps: float | None) -> bool:
        """Hands Optuna the eval losses logged since the last look; True when it pruned the trial.
        Step 0 (the base model, the same for every trial) is not a point of the trial's own.

        The pruner decides on the newest loss only, as it would inside Optuna's own loop: a busy
        server may look at a trial after several evals, and its job has trained past the older
        ones. A trial whose newest eval is at its last step has done its work and is not pruned."""
        points = await self.ctx.child_metric(trial.train, INTERMEDIATE, trial.reported_step)
        if not points:
            return False
        newest = int(points[-1][0])
        prunable = prunable and (total_steps is None or newest < total_steps)
        pruned = await asyncio.to_thread(self._report, trial.trial_id, points, prunable)
        trial.reported_step = points[-1][0]
        if not pruned:
            return False
        await self.tell(trial.number, "pruned", attrs={S.ATTR_PRUNED_AT: newest, S.ATTR_STEPS: newest})
        self.running.pop(trial.number)
        self.ctx.log(f"trial {trial.number}: pruned at step {newest} (eval loss {points[-1][1]:.4f}); stopping job {trial.train.job_id}")
        await self.ctx.cancel_child(trial.train)
        self.stopping[trial.number] = (trial.train, newest)
        self.report_progress()
        return True

    async def settle_stopped(self) -> None:
        """A pruned trial's job trains on until its cancel lands: once it has ended, the trial's
        steps are the ones its job really ran, so total_steps and the step budget count them."""
        for number, (child, pruned_at) in list(self.stopping.items()):
            job = await self.ctx.child_job(child)
            if job.terminal:
                self.stopping.pop(number)
                ran = {**self.study.user_attrs.get(S.STUDY_ATTR_STEPS_RAN, {}),
                       str(number): max(pruned_at, int(job.progress.done or 0))}  # fmt: skip
                await asyncio.to_thread(self.study.set_user_attr, S.STUDY_ATTR_STEPS_RAN, ran)

    def _report(self, trial_id: int, points: list[tuple[float, float]], prunable: bool) -> bool:
        import optuna

        trial = optuna.Trial(self.study, trial_id)
        for step, value in points:
            trial.report(value, int(step))
        return prunable and trial.should_prune()

    async def start_evaluation(self, trial: Running, job: Job) -> None:
        evaluation = self.settings.evaluation
        assert evaluation is not None
        scoring = ScoringRequest(evaluation.dataset or str(self.settings.spec["dataset"]),
                                 evaluation.split or self.settings.spec.get("eval_split") or "test", evaluation.limit,
                                 evaluation.max_new_tokens, evaluation.judge_url, evaluation.judge_model,
                                 evaluation.judge_api_key_env)  # fmt: skip
        try:
            arguments = await self.ctx.services.evaluation.job_arguments(job, scoring)
            trial.evaluation = await self.ctx.start_child(EVALUATE_KIND, arguments, step=step_name(trial.number, "eval"))
        except ForgeError as exc:
            await self.tell(trial.number, "fail", attrs={S.ATTR_ERROR: f"evaluation not started: {exc.message}"})
            self.running.pop(trial.number)
            return
        self.ctx.log(f"trial {trial.number}: trained; scoring with evaluate job {trial.evaluation.job_id}")

    async def follow_evaluation(self, trial: Running) -> None:
        assert trial.evaluation is not None
        job = await self.ctx.child_job(trial.evaluation)
        if job.state is JobState.SUCCEEDED:
            result = job.result or {}
            objective = self.settings.objective
            value = result.get("perplexity") if objective == "perplexity" else (result.get("metrics") or {}).get(objective)
            if trial.steps is None:
                trial.steps = int(((await self.ctx.child_job(trial.train)).result or {}).get("steps") or 0)
            await self.complete(trial, value, f"evaluate job {job.id} has no {objective}")
        elif job.state in (JobState.FAILED, JobState.CANCELED):
            await self.fail(trial, job)

    # settling -------------------------------------------------------------------------------

    async def complete(self, trial: Running, value: Any, missing: str) -> None:
        self.running.pop(trial.number)
        if isinstance(value, int | float) and not math.isfinite(value):
            missing = f"the objective is {value} (the run diverged)"
            value = None
        if not isinstance(value, int | float):
            await self.tell(trial.number, "fail", attrs={S.ATTR_ERROR: missing, S.ATTR_STEPS: trial.steps})
            self.ctx.log(f"trial {trial.number}: failed: {missing}")
        else:
            await self.tell(trial.number, "complete", value=float(value), attrs={S.ATTR_STEPS: trial.steps})
            self.ctx.log(f"trial {trial.number}: complete, {self.settings.objective} {float(value):.4f}")
        self.report_progress()

    async def fail(self, trial: Running, job: Job) -> None:
        self.running.pop(trial.number)
        error = f"job {job.id} ended {job.state.value}" + (f": {job.error}" if job.error else f" ({job.reason})" if job.reason else "")
        steps = int(job.progress.done) if job.progress.done is not None else None
        await self.tell(trial.number, "fail", attrs={S.ATTR_ERROR: error, S.ATTR_STEPS: steps})
        self.ctx.log(f"trial {trial.number}: failed: {error}")
        self.report_progress()

    async def tell(self, number: int, state: str, *, value: float | None = None, attrs: dict[str, Any] | None = None) -> None:
        def write() -> None:
            import optuna

            trial_id = self._trial_id(number)
            for key, attr in (attrs or {}).items():
                if attr is not None:
                    self.study._storage.set_trial_user_attr(trial_id, key, attr)
            states = {"complete": optuna.trial.TrialState.COMPLETE, "pruned": optuna.trial.TrialState.PRUNED,
                      "fail": optuna.trial.TrialState.FAIL}  # fmt: skip
            try:
                self.study.tell(number, value if state == "complete" else None, state=states[state], skip_if_finished=True)
            except RuntimeError:
                # The grid sampler asks the study to stop once its grid is covered, which only works
                # inside study.optimize; the trial's state is stored before it asks. n_trials is capped
                # at the grid's size, so the sweep stops by itself.
                if self.settings.sampler != "grid":
                    raise

        await asyncio.to_thread(write)

    async def set_attr(self, number: int, key: str, value: Any) -> None:
        await asyncio.to_thread(self.study._storage.set_trial_user_attr, self._trial_id(number), key, value)

    def _trial_id(self, number: int) -> int:
        return self.study._storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)

    # what the sweep reports -----------------------------------------------------------------

    async def views(self) -> list[S.TrialView]:
        return await asyncio.to_thread(S.trial_views, self.study, self.space)

    def counted(self) -> int:
        """Trials that finished and count toward n_trials: complete, pruned or failed, not abandoned."""
        return sum(1 for v in S.trial_views(self.study, self.space) if v.state != "running" and not v.abandoned)

    def budget_spent(self) -> str | None:
        if self.settings.max_minutes is not None and time.time() - self.ctx.job.created_at > 60 * self.settings.max_minutes:
            return f"max_minutes {self.settings.max_minutes:g}"
        if self.settings.max_total_steps is not None and self.steps_spent() >= self.settings.max_total_steps:
            return f"max_total_steps {self.settings.max_total_steps}"
        return None

    def steps_spent(self) -> int:
        finished = sum(v.steps or 0 for v in S.trial_views(self.study, self.space) if v.state != "running")
        return finished + sum(int(r.reported_step) for r in self.running.values())

    def report_progress(self) -> None:
        views = S.trial_views(self.study, self.space)
        done = sum(1 for v in views if v.state != "running" and not v.abandoned)
        best = self._best_value()
        message = f"{done}/{self.settings.n_trials} trials finished, {len(self.running)} running" + (
            f"; best {self.settings.objective} {best:.4f}" if best is not None else "")  # fmt: skip
        self.ctx.progress(done, self.settings.n_trials, message)

    def _best_value(self) -> float | None:
        try:
            return float(self.study.best_value)
        except ValueError:  # no trial is complete yet
            return None

    async def result(self) -> SweepResult:
        views = [v for v in await self.views() if not v.abandoned]
        complete = [v for v in views if v.state == "complete" and v.value is not None]
        if not complete:
            reasons = "; ".join(f"trial {v.number}: {v.error or v.state}" for v in views[:5])
            raise ForgeError(f"no trial completed, so there is no best trial ({reasons})")
        pick = min if self.settings.direction == "minimize" else max
        best = pick(complete, key=lambda v: v.value or 0.0)
        best_job = await self.ctx.child_job(Child(step_name(best.number), best.job_id or ""))
        return SweepResult(
            objective=self.settings.objective,
            direction=self.settings.direction,
            best_trial=best.number,
            best_value=float(best.value or 0.0),
            best_params=best.params,
            best_job_id=best_job.id,
            best_adapter=str((best_job.result or {}).get("adapter", "")),
            complete=len(complete),
            pruned=sum(1 for v in views if v.state == "pruned"),
            failed=sum(1 for v in views if v.state == "failed"),
            total_steps=sum(v.steps or 0 for v in views),
            stopped_by=self.stopped_by,
            trials=[summary(v) for v in views],
        )


def summary(view: S.TrialView) -> TrialSummary:
    return TrialSummary(number=view.number, state=view.state, params=view.params, value=view.value, job_id=view.job_id,
                        pruned_at_step=view.pruned_at_step, steps=view.steps, error=view.error)  # fmt: skip


def step_name(number: int, part: str = "") -> str:
    return f"trial-{number}" + (f"-{part}" if part else "")


async def run_sweep(ctx: OrchestrationContext, settings: SweepSettings) -> SweepResult:
    space = SearchSpace.parse(settings.space)
    study = await asyncio.to_thread(S.open_study, ctx.run.study, settings, space)
    return await SweepLoop(ctx, settings, space, study).run()


SWEEP = OrchestrationKind(SWEEP_KIND, SweepSettings, SweepResult, run_sweep)
