"""Sweeps for a caller: start one (every check before anything is queued: the space, the
objective, and train_plan on the spec at each edge of the space), show one (its trials, the best
so far, parameter importance and charts, read from its study) and list them. A sweep is a job
(kind `sweep`, an orchestration): job_status, job_wait, job_cancel and job_logs work on its id."""

from __future__ import annotations

import asyncio
import base64
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.capabilities import ImageAttachment
from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job, JobHandle, Progress
from forge_mcp.jobs.run_dir import RunDir
from forge_mcp.models.evaluation_service import EvaluationService, ScoringRequest
from forge_mcp.security.principal import Principal
from forge_mcp.sweeps import study as S
from forge_mcp.sweeps.jobs import SWEEP_KIND, TrialSummary, summary
from forge_mcp.sweeps.request import SweepConfig, SweepSettings, load_sweep_config, merge, settle
from forge_mcp.sweeps.space import Choices, SearchSpace
from forge_mcp.training.service import TrainingService
from forge_mcp.training.spec import load_recipe
from forge_mcp.workspace import Workspace

MAX_EDGE_PLANS = 64  # train_plan calls at sweep_start; a larger space is checked at its low corner and each edge up to this


class SweepStatus(BaseModel):
    sweep_id: str
    state: str
    progress: Progress
    objective: str
    direction: str
    n_trials: int
    complete: int
    pruned: int
    failed: int
    running: int
    best: TrialSummary | None = Field(description="The best complete trial so far")
    importance: dict[str, float] | None = Field(description="Each parameter's importance (PED-ANOVA; 2+ complete trials)")
    trials: list[TrialSummary]
    history_chart: ImageAttachment | None = None
    parallel_chart: ImageAttachment | None = None
    error: str | None = None
    next_step: str


class SweepListItem(BaseModel):
    sweep_id: str
    state: str
    objective: str
    n_trials: int
    progress: str | None
    best_value: float | None
    best_params: dict[str, Any] | None
    created_at: float


class SweepList(BaseModel):
    sweeps: list[SweepListItem]


class SweepService:
    def __init__(self, workspace: Workspace, training: TrainingService, evaluation: EvaluationService, engine: JobEngine) -> None:
        self._workspace = workspace
        self._training = training
        self._evaluation = evaluation
        self._engine = engine
        self._charts = threading.Lock()  # Optuna's matplotlib plots draw through pyplot's process-wide state

    async def start(
        self,
        principal: Principal,
        given: dict[str, Any],
        *,
        config: str | None = None,
        recipe: str | None = None,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> JobHandle:
        """`given` holds sweep_start's arguments (None: not given, the config's or the default)."""
        S.require_optuna("sweep_start")
        loaded: SweepConfig | None = load_sweep_config(config) if config else None
        values = merge(loaded, given)
        recipe = recipe or (loaded.recipe if loaded else None)
        space = SearchSpace.parse(values["space"])
        spec = await self._base_spec(values.pop("spec"), recipe)
        settings = settle(values, spec, space.grid_size() if values.get("sampler") == "grid" else None)
        await self._check(settings, space)
        return await self._engine.submit(SWEEP_KIND, settings.model_dump(mode="json"), principal.name,
                                         priority=priority, idempotency_key=idempotency_key)  # fmt: skip

    async def status(self, principal: Principal, sweep_id: str, *, charts: bool = True) -> SweepStatus:
        job = await self._sweep(principal, sweep_id)
        settings = SweepSettings.model_validate(job.arguments)
        space = SearchSpace.parse(settings.space)
        run = self._workspace.run(job.id)
        views, importance, pictures = await asyncio.to_thread(self._read, run, space, job, charts)
        trials = [await self._settled(job, view) for view in views if not view.abandoned]
        complete = [t for t in trials if t.state == "complete" and t.value is not None]
        pick = min if settings.direction == "minimize" else max
        best = pick(complete, key=lambda t: t.value or 0.0) if complete else None
        counts = {state: sum(1 for t in trials if t.state == state) for state in ("complete", "pruned", "failed", "running")}
        return SweepStatus(
            sweep_id=job.id, state=job.state.value, progress=job.progress, objective=settings.objective,
            direction=settings.direction, n_trials=settings.n_trials, **counts, best=best, importance=importance,
            trials=trials, history_chart=pictures.get("history"), parallel_chart=pictures.get("parallel"), error=job.error,
            next_step=_next_step(job, best),
        )  # fmt: skip

    async def list(self, principal: Principal, limit: int = 20) -> SweepList:
        items = []
        for job in await self._engine.list(principal, kind=SWEEP_KIND, limit=limit):
            result = job.result or {}
            items.append(SweepListItem(sweep_id=job.id, state=job.state.value, objective=str(job.arguments.get("objective")),
                                       n_trials=int(job.arguments.get("n_trials", 0)), progress=job.progress.message,
                                       best_value=result.get("best_value"), best_params=result.get("best_params"),
                                       created_at=job.created_at))  # fmt: skip
        return SweepList(sweeps=items)

    # starting -------------------------------------------------------------------------------

    async def _base_spec(self, fields: dict[str, Any], recipe: str | None) -> dict[str, Any]:
        merged = {**(load_recipe(recipe) if recipe else {}), **fields}
        for name in ("base_model", "dataset"):
            if not merged.get(name):
                raise InvalidArguments(f"spec.{name}: required — the sweep's base training spec needs base_model (a local "
                                       "model folder) and dataset ('<name>' or '<name>@v<N>')")  # fmt: skip
        plan = await self._training.plan(merged)
        # Kept as clients see it (a folder inside the workspace relative, however it was given).
        return {**merged, "base_model": plan.spec.base_model}

    async def _check(self, settings: SweepSettings, space: SearchSpace) -> None:
        spec = settings.spec
        if settings.compute is not None:
            self._engine.executor_of(settings.compute)
        if settings.objective == "eval_loss" and not spec.get("eval_split"):
            raise InvalidArguments("objective eval_loss: give spec.eval_split (e.g. 'test'): the rows each trial's eval "
                                   "loss is measured on")  # fmt: skip
        if settings.pruner != "none" and not spec.get("eval_steps"):
            raise InvalidArguments(f"pruner {settings.pruner}: trials are pruned on the eval losses they log while they "
                                   "train; give spec.eval_steps (say a fifth of max_steps), or pruner 'none'")  # fmt: skip
        if settings.sampler == "cmaes":
            for name, param in space.parameters.items():
                if isinstance(param, Choices):
                    raise InvalidArguments(f"space.{name}: sampler cmaes searches float and int ranges only; "
                                           "use sampler tpe for categorical choices")  # fmt: skip
        for label, fields in space.edge_specs(spec)[:MAX_EDGE_PLANS]:
            try:
                await self._training.job_arguments(fields)
            except ForgeError as exc:
                raise InvalidArguments(f"space: a trial with {label} would be refused: {exc.message}") from None
        if settings.evaluation is not None or settings.objective != "eval_loss":
            evaluation = settings.evaluation
            dataset = (evaluation.dataset if evaluation else None) or str(spec["dataset"])
            split = (evaluation.split if evaluation else None) or spec.get("eval_split") or "test"
            try:
                await self._evaluation.check_scoring(ScoringRequest(dataset, split, *(
                    (evaluation.limit, evaluation.max_new_tokens, evaluation.judge_url, evaluation.judge_model,
                     evaluation.judge_api_key_env) if evaluation else ())))  # fmt: skip
            except ForgeError as exc:
                raise InvalidArguments(f"evaluation: {exc.message}") from None

    # showing --------------------------------------------------------------------------------

    async def _sweep(self, principal: Principal, sweep_id: str) -> Job:
        job = await self._engine.get(sweep_id, principal)
        if job.kind != SWEEP_KIND:
            raise InvalidArguments(f"sweep_id: {sweep_id} is a {job.kind} job; give the job_id sweep_start returned")
        return job

    def _read(self, run: RunDir, space: SearchSpace, job: Job, charts: bool
              ) -> tuple[list[S.TrialView], dict[str, float] | None, dict[str, ImageAttachment]]:  # fmt: skip
        if not run.study.is_file():
            return [], None, {}  # queued: no trial yet
        study = S.load_study(run.study)
        views = S.trial_views(study, space)
        finished = sum(1 for v in views if v.state in ("complete", "pruned"))
        pictures = self._pictures(study, run.charts, finished, job) if charts and finished else {}
        return views, S.importance(study), pictures

    def _pictures(self, study: Any, folder: Path, finished: int, job: Job) -> dict[str, ImageAttachment]:
        """Drawn once per number of finished trials and kept in the run folder."""
        from forge_mcp.sweeps.charts import history_png, parallel_png

        out = {}
        for name, draw, description in (
            ("history", history_png, "optimisation history: each trial's objective and the best so far"),
            ("parallel", parallel_png, "parallel coordinates: each complete trial's parameters and objective"),
        ):
            path = folder / f"{name}-{finished}.png"
            if not path.is_file():
                with self._charts:
                    png = draw(study, f"sweep {job.id}: {name}")
                folder.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(".partial")
                partial.write_bytes(png)
                partial.replace(path)
            out[name] = ImageAttachment(data_base64=base64.b64encode(path.read_bytes()).decode(), description=description)
        return out

    async def _settled(self, sweep: Job, view: S.TrialView) -> TrialSummary:
        """A trial the study shows running while its sweep has ended (canceled, failed) ended with it."""
        trial = summary(view)
        if view.state == "running" and sweep.terminal:
            reason = f"the sweep ended {sweep.state.value} while it ran"
            if view.job_id:
                child = await self._engine.repo.get(view.job_id)
                reason += f" (job {child.id} {child.state.value})"
            trial = trial.model_copy(update={"state": "failed", "error": reason})
        return trial


def _next_step(job: Job, best: TrialSummary | None) -> str:
    if job.state.value == "SUCCEEDED":
        return f"model_register with job_id {job.id} registers the best trial (its lineage names the sweep and the trial)"
    if job.terminal:
        return "the sweep ended; job_logs shows why" + (f"; its best trial's job {best.job_id} can still be registered"
                                                       if best and best.job_id else "")  # fmt: skip
    return "job_wait on the sweep's id follows it (progress per finished trial); sweep_status again shows the trials"
