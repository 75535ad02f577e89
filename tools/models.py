"""The model registry: register versions with lineage, list and read them, promote them
through registered → staging → production → archived (with a gate), archive them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from forge_mcp.capabilities import Confirm, Toolset
from forge_mcp.models.records import ModelExport, ModelVersion
from forge_mcp.security.principal import Principal
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
    exports: list[ModelExport] = Field(description="Verified exports (model_export): adapter, merged, GGUF")


@toolset.capability(scope="train", title="Register a model version")
async def model_register(
    services: Services,
    principal: Principal,
    name: Annotated[str, Field(min_length=1, max_length=64, description="Lowercase name, e.g. support-bot")],
    job_id: Annotated[str | None, Field(max_length=64, description="A training job that SUCCEEDED")] = None,
    path: Annotated[str | None, Field(max_length=512, description="Or a local adapter or model folder")] = None,
    base_model: Annotated[str | None, Field(max_length=512, description="For an adapter from a path: what it applies to")] = None,
) -> ModelVersion:
    """Registers a new version of `name` from a training job (its adapter or weights, base model,
    dataset fingerprint, spec and metrics become the lineage) or from a local folder. Files are
    copied to models/<name>/v<N> with a model card; the version starts in stage `registered`."""
    if job_id is not None:  # a job's output is its owner's (and an admin's) to register
        await services.jobs.get(job_id, principal)
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
    confirm: Confirm,
    model: ModelRef,
    stage: Literal["staging", "production", "registered"],
    gate: Gate = None,
) -> ModelVersion:
    """Moves a version to `stage`; with a gate, only if its metrics pass. One production version
    per name: promoting one archives the previous one in the same transaction. A move to
    production asks the user to confirm where the client supports it (MCP elicitation); declined
    moves nothing."""
    return await services.models.promote(model, stage, principal.name, gate, confirm)


@toolset.capability(scope="train", title="Archive a model version", destructive=True)
async def model_archive(services: Services, principal: Principal, confirm: Confirm, model: ModelRef) -> ModelVersion:
    """Archives a version: it leaves every stage for good (its files stay for inspection).
    The user is asked to confirm, where the client supports it; declined moves nothing."""
    return await services.models.promote(model, "archived", principal.name, None, confirm)


@toolset.resource("forge://models/{name}", name="model")
async def model_resource(services: Services, name: str) -> ModelDetail:
    """The newest version of a model (or '<name>@v<N>'), with its history."""
    return await _detail(services, name)


async def _detail(services: Services, reference: str) -> ModelDetail:
    model = await services.models.repo.get(reference)
    production = await services.models.repo.production(model.name)
    return ModelDetail(model=model, production=production.id if production else None,
                       history=await services.models.repo.history(model.id),
                       exports=await services.models.repo.exports(model.id))  # fmt: skip
