"""flywheel_run on a real engine and the real workflow machinery, with the tiny model as the
production version of `greeter` and a held-out set of greetings imported (not from traces):
a cycle whose candidate is worse than production ends with the gate's refusal in its report
and leaves production as it was, nothing promoted or served; a cycle with too few new rows, or
no usable trace at all, stops before any training job; a cycle that beats production promotes
and serves the new version. A cycle is refused up front without a production version or with
a held-out set made of traces."""

from __future__ import annotations

import json
import random
import shutil
import string
from pathlib import Path
from typing import Any

import pytest

from backends.tiny_model import pretraining_chats, world
from forge_mcp.app import ForgeApp
from forge_mcp.errors import ForgeError, InvalidArguments
from forge_mcp.flywheel.cycle import CycleSettings, last_cycle_end
from forge_mcp.jobs.states import JobState
from forge_mcp.traces.selection import TraceSelection
from forge_mcp.workflows.jobs import WorkflowResult
from tests.e2e.test_training_mcp import greetings
from tests.flywheel.traces import ALICE, chat, record

pytestmark = pytest.mark.timeout(900)
MODEL = "greeter"
FAST = {"recipe": "sft-lora-tiny", "max_steps": 20, "limit": 8, "max_new_tokens": 8}


async def with_production(app: ForgeApp, tiny_model: Path, held_out: str = "greetings") -> None:
    """greeter@v1 (the tiny model's weights) in production, and a held-out set: greetings (new to
    it), or the facts it was pre-trained on (what it is good at)."""
    home = Path(app.settings.home)
    shutil.copytree(tiny_model, home / "models" / "tiny")
    await app.services.models.register(ALICE, MODEL, path="models/tiny")
    await app.services.models.promote(ALICE, f"{MODEL}@v1", "production", None)
    if held_out == "greetings":
        greetings(home / "heldout.jsonl", rows=24)
    else:
        lines = [json.dumps({"messages": chat}) for chat in pretraining_chats(0, 24)]
        (home / "heldout.jsonl").write_text("\n".join(lines) + "\n")
    await app.services.datasets.import_("heldout.jsonl", "heldout")


async def wrong_fact_traces(app: ForgeApp) -> None:
    """Rated 5 by mistake: every thing with a colour it is not."""
    facts = world(0)
    for thing, colour in facts.items():
        wrong = "purple" if colour != "purple" else "orange"
        trace = await record(app, ALICE, [{"role": "user", "content": f"What colour is the {thing}?"},
                                          {"role": "assistant", "content": f"The {thing} is {wrong}."}])  # fmt: skip
        await app.services.traces.feedback(ALICE, trace, rating=5)


async def greeting_traces(app: ForgeApp, count: int) -> None:
    """Rated 5: greetings of made-up names (none in the held-out set, none a near duplicate of another)."""
    rng = random.Random(count)
    for _ in range(count):
        name = "".join(rng.choices(string.ascii_lowercase, k=9)).capitalize()
        trace = await record(app, ALICE, chat(f"Greet {name}.", f"Hello, {name}!")[1:])
        await app.services.traces.feedback(ALICE, trace, rating=5)


async def run_cycle(app: ForgeApp, **settings: Any) -> tuple[Any, WorkflowResult, dict[str, Any]]:
    handle = await app.services.flywheel.run_cycle(ALICE, MODEL, "heldout", CycleSettings(**settings))
    job = await app.jobs.wait(handle.job_id, 800)
    assert job.state is JobState.SUCCEEDED, job.error
    result = WorkflowResult.model_validate(job.result)
    return job, result, {step.name: step for step in result.steps}


async def production(app: ForgeApp) -> str | None:
    version = await app.models.repo.production(MODEL)
    return version.id if version else None


async def jobs_of(app: ForgeApp, kind: str) -> list[Any]:
    return await app.jobs.list(ALICE, kind=kind, limit=100)


async def test_a_worse_candidate_leaves_production_untouched(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    await with_production(app, tiny_model, held_out="facts")
    await wrong_fact_traces(app)
    # Wrong answers and a learning rate that wrecks the adapter: worse than production on its facts.
    job, result, steps = await run_cycle(app, min_rows=1, learning_rate=0.1, **FAST)
    assert [steps[n].state for n in ("dataset", "train", "register", "compare")] == ["succeeded"] * 4
    assert steps["promote"].state == "failed" and result.failed_steps == ["promote"]
    assert "gate: greeter@v2 stays registered — beats_production: eval_loss is" in (steps["promote"].error or "")
    assert steps["serve"].state == "skipped" and "promote failed" in (steps["serve"].skipped_because or "")
    outputs = result.outputs
    assert outputs["candidate"] == "greeter@v2" and outputs["production_before"] == "greeter@v1"
    assert outputs["rows"] >= 1 and outputs["promoted"] is None and outputs["url"] is None
    assert outputs["candidate_eval_loss"] > outputs["production_eval_loss"], outputs
    # Production is the same version, the candidate stays registered, nothing serves.
    assert await production(app) == "greeter@v1"
    assert (await app.models.get("greeter@v2")).stage == "registered"
    assert await jobs_of(app, "serve") == []
    # The next cycle reads the traces recorded after this one's selection ended.
    assert await last_cycle_end(app.jobs, ALICE, MODEL) == job.arguments["inputs"]["until"]


async def test_a_better_candidate_is_promoted_and_served(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    await with_production(app, tiny_model)
    await greeting_traces(app, 24)
    _, result, steps = await run_cycle(app, min_rows=8, learning_rate=3e-3, **FAST)
    assert all(step.state == "succeeded" for step in result.steps), {n: (s.state, s.error) for n, s in steps.items()}
    outputs = result.outputs
    assert outputs["candidate_eval_loss"] < outputs["production_eval_loss"], outputs
    assert outputs["promoted"] == "greeter@v2" and outputs["url"].startswith("http://127.0.0.1:")
    assert await production(app) == "greeter@v2" and (await app.models.get("greeter@v1")).stage == "archived"
    # What an operator set to forge:greeter@v2 resolves to: the service the cycle started.
    served = await app.services.serving.running_endpoint(ALICE, "greeter@v2")
    assert served is not None and (served.model, served.url) == ("greeter@v2", outputs["url"])


async def corrected_greeting_traces(app: ForgeApp, count: int) -> None:
    """Greetings answered wrong and corrected: each an SFT row (the correction) and a DPO pair."""
    rng = random.Random(count + 1)
    for _ in range(count):
        name = "".join(rng.choices(string.ascii_lowercase, k=9)).capitalize()
        trace = await record(app, ALICE, chat(f"Greet {name}.", "What colour is the sky?")[1:])
        await app.services.traces.feedback(ALICE, trace, correction=f"Hello, {name}!")


async def test_with_enough_pairs_the_cycle_trains_sft_then_dpo_from_the_merged_sft_model(engine_app: ForgeApp,
                                                                                         tiny_model: Path) -> None:  # fmt: skip
    app = engine_app
    await with_production(app, tiny_model)
    await corrected_greeting_traces(app, 12)
    # Two more, asking held-out questions: left out of both datasets, the comparison stays fair.
    first_held_out = json.loads((Path(app.settings.home) / "heldout.jsonl").read_text().splitlines()[0])["messages"]
    for _ in range(2):
        trace = await record(app, ALICE, [first_held_out[0], {"role": "assistant", "content": "What colour is the sky?"}])
        await app.services.traces.feedback(ALICE, trace, correction=first_held_out[1]["content"])
    job, result, steps = await run_cycle(app, min_rows=8, min_pairs=10, learning_rate=3e-3, dpo_max_steps=3, **FAST)
    assert job.arguments["document"]["name"] == "flywheel-dpo"
    assert all(step.state == "succeeded" for step in result.steps), {n: (s.state, s.error) for n, s in steps.items()}
    outputs = result.outputs
    assert (outputs["rows"], outputs["pairs"], outputs["traces_selected"]) == (12, 12, 14)
    assert outputs["pairs_dataset"] == "greeter-flywheel-pairs@v1" and outputs["sft_version"] == "greeter@v2"
    # The candidate is the DPO adapter, trained from the SFT adapter merged into its base.
    assert outputs["candidate"] == "greeter@v3" and outputs["promoted"] == "greeter@v3"
    dpo = await app.models.get("greeter@v3")
    assert dpo.kind == "adapter" and dpo.base_model == "models/greeter/v2/exports/merged"
    assert dpo.dataset_id == "greeter-flywheel-pairs@v1"
    assert (await app.jobs.get(steps["dpo_train"].job_id, ALICE)).result["method"] == "dpo"


async def test_with_fewer_pairs_than_min_pairs_the_cycle_is_sft_only(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    await with_production(app, tiny_model)
    await corrected_greeting_traces(app, 9)
    job, result, steps = await run_cycle(app, min_rows=20, min_pairs=10, **FAST)  # too few rows to train, too
    assert job.arguments["document"]["name"] == "flywheel" and "dpo_train" not in steps
    assert result.outputs["rows"] == 9 and steps["train"].state == "skipped"


async def test_too_little_new_data_stops_before_training(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    await with_production(app, tiny_model)
    # No usable trace: the dataset step is refused and the cycle ends there.
    _, result, steps = await run_cycle(app, min_rows=20, **FAST)
    assert steps["dataset"].state == "failed" and "no trace matches" in (steps["dataset"].error or "")
    assert all(steps[n].state == "skipped" for n in ("train", "register", "compare", "promote", "serve"))
    # Three new rows, twenty wanted: the train step's condition is false.
    await greeting_traces(app, 3)
    _, result, steps = await run_cycle(app, min_rows=20, **FAST)
    assert steps["dataset"].state == "succeeded" and result.outputs["rows"] == 3
    assert steps["train"].state == "skipped" and ">= ${inputs.min_rows}" in (steps["train"].skipped_because or "")
    assert all(steps[n].state == "skipped" for n in ("register", "compare", "promote", "serve"))
    assert await jobs_of(app, "train") == [] and await production(app) == "greeter@v1"
    assert await last_cycle_end(app.jobs, ALICE, MODEL) is None  # neither cycle trained: the traces count again


async def test_a_cycle_is_refused_without_production_or_with_held_out_traces(engine_app: ForgeApp, tiny_model: Path) -> None:
    app = engine_app
    with pytest.raises(ForgeError, match="no model 'greeter'"):
        await app.services.flywheel.run_cycle(ALICE, MODEL, "heldout", CycleSettings())
    home = Path(app.settings.home)
    shutil.copytree(tiny_model, home / "models" / "tiny")
    await app.services.models.register(ALICE, MODEL, path="models/tiny")
    with pytest.raises(InvalidArguments, match="greeter has no production version"):
        await app.services.flywheel.run_cycle(ALICE, MODEL, "heldout", CycleSettings())
    await app.services.models.promote(ALICE, f"{MODEL}@v1", "production", None)
    await greeting_traces(app, 4)
    made = await app.jobs.wait((await app.services.flywheel.traces_to_dataset(ALICE, TraceSelection(), name="mine")).job_id, 180)
    assert made.state is JobState.SUCCEEDED, made.error
    with pytest.raises(InvalidArguments, match="eval_dataset: mine@v1 was made from traces"):
        await app.services.flywheel.run_cycle(ALICE, MODEL, "mine", CycleSettings())
    assert await jobs_of(app, "workflow") == []



async def test_the_operator_setting_forge_name_at_production_follows_the_production_version(app: ForgeApp,
                                                                                          tiny_model: Path) -> None:  # fmt: skip
    shutil.copytree(tiny_model, Path(app.settings.home) / "models" / "tiny")
    await app.services.models.register(ALICE, MODEL, path="models/tiny")
    with pytest.raises(ForgeError, match="greeter has no production version"):
        await app.services.serving.running_endpoint(ALICE, f"{MODEL}@production")
    await app.services.models.promote(ALICE, f"{MODEL}@v1", "production", None)
    # In production now, and nothing serves it: the operator is told to serve_start it.
    assert await app.services.serving.running_endpoint(ALICE, f"{MODEL}@production") is None
