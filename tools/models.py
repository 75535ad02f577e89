"""The model registry: register versions with lineage, list and read them, promote them
through registered → staging → production → archived (with a gate), archive them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from forge_mcp.capabilities import Confirm, Toolset
from forge_mcp.models.records import ModelVersion
from forge_mcp.models.registry import ModelDetail, ModelList
from forge_mcp.security.principal import Principal
from forge_mcp.services import Services

toolset = Toolset("models", "A registry of model versions: lineage, stages, gates and model cards.")

ModelRef = Annotated[str, Field(max_length=80, description="'<name>' (newest version) or '<name>@v<N>'")]
Gate = Annotated[
    dict[str, str] | None,
    Field(description='Conditions on the version\'s metrics, e.g. {"final_eval_loss": "< 2.5"}, or '
                      '{"beats_production": "final_eval_loss"}; a failed gate refuses the move'),  # fmt: skip
]


@toolset.capability(scope="train", title="Register a model version")
async def model_register(
    services: Services,
    principal: Principal,
    name: Annotated[str, Field(min_length=1, max_length=64, description="Lowercase name, e.g. support-bot")],
    job_id: Annotated[str | None, Field(max_length=64, description="A training job that SUCCEEDED")] = None,
    path: Annotated[str | None, Field(max_length=512, description="Or a local adapter or model folder")] = None,
    base_model: Annotated[str | None, Field(max_length=512, description="For an adapter from a path: what it applies to")] = None,
) -> ModelVersion:
    """Use after training succeeds, before evaluate, promote, export or serve: a new version of
    `name` from a training job (adapter or weights, base model, dataset fingerprint, spec and
    metrics become the lineage) or a local folder. Copies the files to models/<name>/v<N> with a
    model card (seconds; more for full weights); stage `registered`."""
    return await services.models.register(principal, name, job_id=job_id, path=path, base_model=base_model)


@toolset.capability(scope="read", title="List model versions", read_only=True)
async def model_list(
    services: Services,
    name: Annotated[str | None, Field(max_length=64)] = None,
    stage: Literal["registered", "staging", "production", "archived"] | None = None,
    limit: Annotated[int, Field(ge=1, le=500)] = 50,
) -> ModelList:
    """Model versions by name, newest first, with stage, lineage, metrics. Instant, read-only."""
    return await services.models.list(name, stage, limit)


@toolset.capability(scope="read", title="Get a model version", read_only=True)
async def model_get(services: Services, model: ModelRef) -> ModelDetail:
    """One version: stage, lineage (base model, dataset fingerprint, training job, spec), metrics,
    exports, stage history. Instant, read-only."""
    return await services.models.detail(model)


@toolset.capability(scope="train", title="Promote a model version", destructive=True)
async def model_promote(
    services: Services,
    principal: Principal,
    confirm: Confirm,
    model: ModelRef,
    stage: Literal["staging", "production", "registered"],
    gate: Gate = None,
) -> ModelVersion:
    """Moves a version to `stage`, e.g. production once model_evaluate's numbers are good; with a
    gate, only if its metrics pass. One production version per name: the previous one is archived in
    the same transaction. Production asks the user to confirm where the client supports it; declined
    moves nothing. Instant."""
    return await services.models.promote(principal, model, stage, gate, confirm)


@toolset.capability(scope="train", title="Archive a model version", destructive=True)
async def model_archive(services: Services, principal: Principal, confirm: Confirm, model: ModelRef) -> ModelVersion:
    """Retires a version for good: it leaves every stage (files stay for inspection). The user is
    asked to confirm where the client supports it; declined moves nothing. Instant."""
    return await services.models.archive(principal, model, confirm)


@toolset.resource("forge://models/{name}", name="model")
async def model_resource(services: Services, name: str) -> ModelDetail:
    """The newest version of a model (or '<name>@v<N>'), with its history."""
    return await services.models.detail(name)
