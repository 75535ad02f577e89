"""The model registry: register versions with lineage, list and read them, promote them
through registered → staging → production → archived (with a gate), archive them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.backends.evaluate import Decoding, Evaluation
from forge_mcp.capabilities import Toolset
from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra
from forge_mcp.jobs.kinds import JobContext
from forge_mcp.jobs.models import JobHandle, Resources
from forge_mcp.models.records import ModelVersion
from forge_mcp.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("models", "A registry of model versions: lineage, stages, gates and model cards.")

ModelRef = Annotated[str, Field(max_length=80, description="'<name>' (newest version) or '<name>@v<N>'")]
Gate = Annotated[
    dict[str, str] | None,
    Field(description='Conditions on the version\'s metrics, e.g. {"final_eval_loss": "< 2.5"}, or '
                      '{"beats_production": "final_eval_loss"}; a failed gate refuses the move'),  # fmt: skip
]


class ModelList(BaseModel):
    models: list[ModelVersion]


class ModelDetail(BaseModel):
    model: ModelVersion
    production: str | None = Field(description="The production version of this name, if any")
    history: list[dict[str, Any]] = Field(description="Every stage change: from, to, who, why, when")


@toolset.capability(scope="train", title="Register a model version")
async def model_register(
    services: Services,
    principal: Principal,
    name: Annotated[str, Field(min_length=1, max_length=64, description="Lowercase name, e.g. support-bot")],
    job_id: Annotated[str | None, Field(max_length=64, description="A training job that SUCCEEDED")] = None,
    path: Annotated[str | None, Field(max_length=512, description="Or a local adapter or model folder")] = None,
    base_model: Annotated[str | None, Field(max_length=512, description="For an adapter from a path: what it applies to")] = None,
) -> ModelVersion:
    """Registers a new version of `name` from a training job (its adapter or weights, base
    model, dataset fingerprint, spec and metrics become the lineage) or from a local folder.
    The files are copied to models/<name>/v<N> with a model card; the version starts in
    stage `registered`."""
    return await services.models.register(name, principal.name, job_id=job_id, path=path, base_model=base_model)


@toolset.capability(scope="read", title="List model versions", read_only=True)
async def model_list(
    services: Services,
    name: Annotated[str | None, Field(max_length=64)] = None,
    stage: Literal["registered", "staging", "production", "archived"] | None = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> ModelList:
    """Model versions, by name and newest first, with stage, lineage and metrics."""
    return ModelList(models=await services.models.repo.list(name, stage, limit))


@toolset.capability(scope="read", title="Get a model version", read_only=True)
async def model_get(services: Services, model: ModelRef) -> ModelDetail:
    """One version: stage, lineage (base model, dataset fingerprint, training job and
    spec), metrics, and its stage history."""
    return await _detail(services, model)


@toolset.capability(scope="train", title="Promote a model version", destructive=True)
async def model_promote(
    services: Services,
    principal: Principal,
    model: ModelRef,
    stage: Literal["staging", "production", "registered"],
    gate: Gate = None,
) -> ModelVersion:
    """Moves a version to `stage`. With a gate, the move happens only if the version's
    metrics pass it. At most one version per name is in production: promoting one archives
    the previous production version in the same transaction."""
    return await services.models.promote(model, stage, principal.name, gate)


@toolset.capability(scope="train", title="Archive a model version", destructive=True)
async def model_archive(services: Services, principal: Principal, model: ModelRef) -> ModelVersion:
    """Archives a version: it leaves every stage for good (its files stay for inspection)."""
    return await services.models.promote(model, "archived", principal.name, None)


async def _store_evaluation(services: Services, job: Any, result: dict[str, Any]) -> dict[str, Any]:
    model_id = job.arguments.get("model_id")
    if model_id:
        evaluation = Evaluation(**result)
        await services.models.repo.add_metrics(model_id, {
            "eval_loss": evaluation.loss, "perplexity": evaluation.perplexity, **evaluation.metrics,
            "evaluated_on": f"{evaluation.dataset_id}:{evaluation.split}",
        })  # fmt: skip
    return result


@toolset.job_kind("evaluate", resources=lambda _: Resources(memory_gb=1.0), publish=_store_evaluation)
def evaluate_job(job: JobContext, label: str, model_path: str, adapter_path: str | None, dataset_path: str,
                 dataset_id: str, split: str, limit: int, decoding: dict[str, Any], model_id: str | None = None) -> Evaluation:  # fmt: skip
    from forge_mcp.backends.evaluate import evaluate

    root = job.workspace_root
    return evaluate(job, label, root / model_path, root / adapter_path if adapter_path else None,
                    root / dataset_path / "data.parquet", dataset_id, split, limit, Decoding(**decoding))  # fmt: skip


@toolset.capability(scope="train", title="Evaluate a model", long_running=True)
async def model_evaluate(
    services: Services,
    principal: Principal,
    dataset: Annotated[str, Field(max_length=80, description="A prepared chat dataset: '<name>' or '<name>@v<N>'")],
    model: Annotated[str | None, Field(max_length=80, description="A registered version, '<name>@v<N>'")] = None,
    base_model: Annotated[str | None, Field(max_length=512, description="Or a local model folder, e.g. to score the base")] = None,
    split: Annotated[str, Field(max_length=32)] = "test",
    limit: Annotated[int, Field(ge=1, le=100_000, description="Rows to evaluate at most")] = 200,
    max_new_tokens: Annotated[int, Field(ge=1, le=4096)] = 64,
) -> JobHandle:
    """Starts a job that scores a model on a dataset split: loss and perplexity on the
    assistant turns, then greedy answers (fixed decoding) scored by exact match, contains,
    ROUGE-L and, for JSON answers, JSON validity. For a registered version the results are
    stored on it, where model_promote's gates read them. Follow with job_wait."""
    require_extra("train", "model_evaluate")
    target = await services.models.evaluation_target(model, base_model)
    info = await services.datasets.repo.get(dataset)
    if info.kind != "messages" or split not in (info.report.get("splits") or {}):
        raise InvalidArguments(f"dataset: {info.id} must be a prepared chat (messages) dataset with a {split!r} split")
    arguments = {**target, "dataset_path": info.path, "dataset_id": info.id, "split": split, "limit": limit,
                 "decoding": Decoding(max_new_tokens=max_new_tokens).model_dump()}  # fmt: skip
    return await services.jobs.submit("evaluate", arguments, principal.name)


@toolset.resource("forge://models/{name}", name="model")
async def model_resource(services: Services, name: str) -> ModelDetail:
    """The newest version of a model (or '<name>@v<N>'), with its history."""
    return await _detail(services, name)


async def _detail(services: Services, reference: str) -> ModelDetail:
    model = await services.models.repo.get(reference)
    production = await services.models.repo.production(model.name)
    return ModelDetail(model=model, production=production.id if production else None,
                       history=await services.models.repo.history(model.id))  # fmt: skip
