"""The model registry as a service: register a version (from a training job or a local
folder) with its lineage and a model card, list and read versions, move them through
registered → staging → production → archived, with an optional gate on the way up.

The registry is shared: every caller with the right scope sees every version. A caller's
principal matters where a job is read (only their own training job, or an admin's pick,
can be registered) and where a move is recorded (who promoted)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from forge_mcp.capabilities import Confirm, cannot_confirm
from forge_mcp.errors import Conflict, ForgeError, InvalidArguments, NotFound
from forge_mcp.jobs.engine import JobEngine
from forge_mcp.jobs.models import Job
from forge_mcp.models.gate import check_gate
from forge_mcp.models.records import NEXT_STAGES, ModelExport, ModelVersion, Stage
from forge_mcp.models.repository import ModelRepository
from forge_mcp.package_data import card_file
from forge_mcp.references import check_name
from forge_mcp.security.principal import Principal
from forge_mcp.sweeps import SWEEP_KIND
from forge_mcp.workspace import Workspace

TRAINING_METRICS = ("first_loss", "final_loss", "base_eval_loss", "final_eval_loss", "best_eval_loss", "tokens_per_second")
MODEL_CARD = "README.md"


class ModelList(BaseModel):
    models: list[ModelVersion]


class ModelDetail(BaseModel):
    model: ModelVersion
    production: str | None = Field(description="The production version of this name, if any")
    history: list[dict[str, Any]] = Field(description="Every stage change: from, to, who, why, when")
    exports: list[ModelExport] = Field(description="Verified exports (model_export): adapter, merged, GGUF")


class ModelRegistry:
    def __init__(self, workspace: Workspace, repo: ModelRepository, engine: JobEngine) -> None:
        self.workspace = workspace
        self.repo = repo
        self._engine = engine
        self.root = workspace.root / "models"

    async def register(self, principal: Principal, name: str, *, job_id: str | None = None, path: str | None = None,
                       base_model: str | None = None) -> ModelVersion:  # fmt: skip
        """A new version of `name` from a training job of `principal`'s (an admin's: anyone's) or
        from a local folder, recorded as registered by them."""
        job = await self._engine.get(job_id, principal) if job_id is not None else None  # before anything else is said
        check_name(name)
        if (job_id is None) == (path is None):
            raise InvalidArguments("job_id or path: give exactly one — the training job, or a local model folder")
        values = await (self._from_job(job) if job is not None else self._from_path(path or "", base_model))
        source = self.workspace.root / values.pop("source")
        version = await self.repo.next_version(name)
        values.update(id=f"{name}@v{version}", name=name, version=version, path=f"models/{name}/v{version}")
        staging = self.workspace.writable(self.root / ".staging") / uuid.uuid4().hex
        target = self.workspace.writable(self.workspace.root / values["path"])
        try:
            staging.parent.mkdir(parents=True, exist_ok=True)
            # Links inside the folder are copied as the files they point to, and only from inside the allowed roots.
            await asyncio.to_thread(self.workspace.copy_tree, source, staging, field="job_id" if job_id else "path")
            (staging / MODEL_CARD).write_text(model_card(values))
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():  # versions come from the index, so a folder it does not list is a leftover
                shutil.rmtree(target)
            staging.rename(target)
            return await self.repo.insert(values, principal.name)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if not await self._listed(values["id"]):
                shutil.rmtree(target, ignore_errors=True)
            raise

    async def get(self, reference: str) -> ModelVersion:
        """'<name>' (the newest version) or '<name>@v<N>'."""
        return await self.repo.get(reference)

    async def in_production(self, name: str) -> ModelVersion:
        """The version of `name` in production now."""
        production = await self.repo.production(name)
        if production is None:
            raise NotFound(f"model: {name} has no production version; model_promote moves one there, model_list "
                           "shows the stages")  # fmt: skip
        return production

    async def list(self, name: str | None = None, stage: Stage | None = None, limit: int = 50) -> ModelList:
        return ModelList(models=await self.repo.list(name, stage, limit))

    async def detail(self, reference: str) -> ModelDetail:
        """A version with the production version of its name, its stage history and its exports."""
        model = await self.repo.get(reference)
        production = await self.repo.production(model.name)
        return ModelDetail(model=model, production=production.id if production else None,
                           history=await self.repo.history(model.id), exports=await self.repo.exports(model.id))  # fmt: skip

    async def archive(self, principal: Principal, reference: str, confirm: Confirm = cannot_confirm) -> ModelVersion:
        """Out of every stage for good (its files stay); `confirm` as for promote."""
        return await self.promote(principal, reference, "archived", None, confirm)

    async def promote(self, principal: Principal, reference: str, stage: str, gate: dict[str, str] | None,
                      confirm: Confirm = cannot_confirm) -> ModelVersion:  # fmt: skip
        """`confirm` asks the person behind the caller before a version goes to production or is
        archived, once the move is known to be allowed; declined moves nothing, None (cannot
        ask) goes on. The move is recorded as `principal`'s."""
        model = await self.repo.get(reference)
        if stage not in NEXT_STAGES[model.stage]:
            allowed = ", ".join(NEXT_STAGES[model.stage]) or "nowhere: archived is final"
            raise Conflict(f"stage: {model.id} is {model.stage}; from there it can go to {allowed}")
        production = await self.repo.production(model.name)
        failures = check_gate(gate or {}, model.metrics, production.metrics if production else None)
        if failures:
            raise Conflict(f"gate: {model.id} stays {model.stage} — " + "; ".join(failures))
        if stage in ("production", "archived"):
            if stage == "production":
                replaced = (f"The current production version {production.id} will be archived." if production
                            else f"No version of {model.name} is in production now.")  # fmt: skip
                question, action = f"Promote {model.id} to production? {replaced}", "promoting {} to production"
            else:
                question, action = f"Archive {model.id} for good? Archived versions cannot be promoted again.", "archiving {}"
            if await confirm(question) is False:
                raise Conflict(f"confirmation: {action.format(model.id)} was declined; nothing moved, "
                               f"{model.id} stays {model.stage}")  # fmt: skip
        reason = f"gate passed: {json.dumps(gate)}" if gate else "promoted"
        return await self.repo.move(model, stage, principal.name, reason)

    async def weights(self, reference: str) -> tuple[ModelVersion, str, str | None]:
        """(version, model folder, adapter folder or None): what a job loads for a version."""
        version = await self.repo.get(reference)
        # Checked entry by entry before any job reads them; the job checks again before loading.
        resolved = await asyncio.to_thread(self.workspace.resolve_tree, version.path, field="model")
        if await asyncio.to_thread(scores_only, resolved):  # every caller of this loads a model that writes text
            raise InvalidArguments(f"model: {version.id} is a reward model (a scoring head, method reward): it scores "
                                   "answers rather than writing them, so it cannot be evaluated, exported or served; "
                                   "its training result's method_metrics hold its held-out ranking accuracy")  # fmt: skip
        folder = self.workspace.shown(resolved)
        if version.kind == "full":
            return version, folder, None
        if version.base_model is None:
            raise InvalidArguments(f"model: {version.id} is an adapter with no base model recorded")
        base = await asyncio.to_thread(self.workspace.resolve_tree, version.base_model, field="model's base model")
        return version, self.workspace.shown(base), folder

    async def _from_job(self, job: Job) -> dict[str, Any]:
        if job.kind == SWEEP_KIND:
            return await self._from_sweep(job)
        job_id = job.id
        if job.kind != "train" or job.state.value != "SUCCEEDED" or not job.result:
            raise InvalidArguments(f"job_id: {job_id} is a {job.kind} job in state {job.state.value}; "
                                   "give a training job that SUCCEEDED")  # fmt: skip
        plan, result = job.arguments["plan"], job.result
        return {
            "source": result["adapter"],
            "kind": "adapter" if result["adapter"].endswith("/adapter") else "full",
            "base_model": plan["spec"]["base_model"],
            "dataset_id": plan["dataset_id"],
            "dataset_fingerprint": result["dataset_fingerprint"],
            "job_id": job_id,
            "spec": plan["spec"],
            "metrics": {k: result[k] for k in TRAINING_METRICS if result.get(k) is not None},
        }

    async def _from_sweep(self, sweep: Job) -> dict[str, Any]:
        """A sweep's best trial: its training job's lineage, and which sweep and trial it won."""
        if sweep.state.value != "SUCCEEDED" or not sweep.result:
            raise InvalidArguments(f"job_id: sweep {sweep.id} is {sweep.state.value}; wait for it with job_wait (a sweep "
                                   "that did not succeed has no best trial: sweep_status shows its trials' jobs)")  # fmt: skip
        result = sweep.result
        values = await self._from_job(await self._engine.repo.get(result["best_job_id"]))
        values["sweep"] = {"sweep_id": sweep.id, "trial": result["best_trial"], "params": result["best_params"],
                           "objective": result["objective"], "value": result["best_value"]}  # fmt: skip
        return values

    async def _from_path(self, raw: str, base_model: str | None) -> dict[str, Any]:
        folder = await asyncio.to_thread(self.workspace.resolve_tree, raw, field="path")
        if (folder / "adapter_config.json").is_file():
            recorded = json.loads((folder / "adapter_config.json").read_text()).get("base_model_name_or_path")
            if base_model is None and not recorded:
                raise InvalidArguments("base_model: this adapter does not say what it applies to; give base_model")
            kind = "adapter"
        elif (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
            kind, recorded = "full", None
        else:
            raise InvalidArguments("path: give a PEFT adapter folder (adapter_config.json) or a model folder "
                                   "(config.json and *.safetensors)")  # fmt: skip
        return {"source": self.workspace.shown(folder),
                "kind": kind, "base_model": await self._base_shown(base_model, recorded), "dataset_id": None,
                "dataset_fingerprint": None,
                "job_id": None, "spec": {}, "metrics": {}}  # fmt: skip

    async def _base_shown(self, given: str | None, recorded: str | None) -> str | None:
        """The base model as clients see it: the caller's folder must exist (checked like every folder a
        job will read); a trainer's record (often an absolute host path) is made relative when it
        names a folder here, and kept as written otherwise (a hub id, a folder on another machine)."""
        if given is not None:
            return self.workspace.shown(await asyncio.to_thread(self.workspace.resolve_tree, given, field="base_model"))
        if recorded is None:
            return None
        try:
            return self.workspace.shown(await asyncio.to_thread(self.workspace.resolve_tree, recorded, field="base_model"))
        except ForgeError:
            return recorded

    async def _listed(self, model_id: str) -> bool:
        try:
            await self.repo.get(model_id)
        except NotFound:
            return False
        return True


def model_card(values: dict[str, Any]) -> str:
    fields = {**values, "stage": "registered", "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "spec": json.dumps(values.get("spec", {}), indent=2), "metrics": json.dumps(values.get("metrics", {}), indent=2),
              "sweep": _sweep_line(values.get("sweep"))}  # fmt: skip
    return card_file("model_card.md").read_text().format_map({k: ("—" if v is None else v) for k, v in fields.items()})


def _sweep_line(sweep: dict[str, Any] | None) -> str | None:
    if not sweep:
        return None
    params = ", ".join(f"{k}={v}" for k, v in sweep["params"].items())
    return f"{sweep['sweep_id']}, best trial {sweep['trial']} ({sweep['objective']} {sweep['value']:.4g}; {params})"


def scores_only(folder: Path) -> bool:
    """A reward model: a PEFT sequence-classification adapter, or a whole model with a scoring head."""
    adapter, config = folder / "adapter_config.json", folder / "config.json"
    if adapter.is_file():
        return json.loads(adapter.read_text()).get("task_type") == "SEQ_CLS"
    if config.is_file():
        return any(a.endswith("ForSequenceClassification") for a in json.loads(config.read_text()).get("architectures") or [])
    return False
