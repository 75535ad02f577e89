"""Every method and adapter through the MCP client on the tiny model: DPO's reward accuracy
rises, ORPO and KTO (on pairs and on labeled answers) raise the chosen-over-rejected margin, a
reward model ranks held-out pairs, GRPO with an exact-match reward raises its mean reward,
continued pre-training lowers held-out perplexity (with general data mixed in), QLoRA really
trains a 4-bit base, full fine-tuning writes whole weights."""

from __future__ import annotations

import asyncio
import json
import math
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.a2a_clients import a2a_client
from tests.e2e.test_training_mcp import NAMES, greetings

pytestmark = pytest.mark.e2e


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def preference_rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(1)
    rows = []
    for _ in range(n):
        name = f"{rng.choice(NAMES)}{rng.randrange(100)}"
        rows.append({"prompt": [{"role": "user", "content": f"Greet {name}."}],
                     "chosen": [{"role": "assistant", "content": f"Hello, {name}!"}],
                     "rejected": [{"role": "assistant", "content": "Go away."}]})  # fmt: skip
    return rows


def labeled_rows(n: int) -> list[dict[str, Any]]:
    """Single answers judged good or bad, as KTO learns from them: half of each."""
    return [{"prompt": pair["prompt"], "completion": pair["chosen" if i % 2 else "rejected"], "label": bool(i % 2)}
            for i, pair in enumerate(preference_rows(n))]  # fmt: skip


def colour_chats(n: int) -> list[dict[str, Any]]:
    """Questions with one checkable answer, which the tiny model gets right only some of the time when it samples."""
    from forge_mcp.backends.tiny_model import world

    facts = sorted(world(0).items())
    return [{"messages": [{"role": "user", "content": f"What colour is the {thing}?"},
                          {"role": "assistant", "content": f"The {thing} is {colour}."}]}
            for thing, colour in (facts[i % len(facts)] for i in range(n))]  # fmt: skip


def text_rows(n: int) -> list[dict[str, Any]]:
    rng = random.Random(2)
    days = ("monday", "tuesday", "friday")
    return [{"text": f"The courier {rng.choice(NAMES)} delivers parcel {rng.randrange(10_000)} on {rng.choice(days)} and "
                     "rings twice."} for _ in range(n)]  # fmt: skip


def fact_rows(truthful: bool) -> list[dict[str, Any]]:
    """Questions the tiny model learned in pre-training, with its world's answers (or wrong ones)."""
    from forge_mcp.backends.tiny_model import COLOURS, world

    rows = []
    for thing, colour in world(0).items():
        answer = colour if truthful else next(c for c in COLOURS if c != colour)
        rows.append({"messages": [{"role": "user", "content": f"What colour is the {thing}?"},
                                  {"role": "assistant", "content": f"The {thing} is {answer}."}]})  # fmt: skip
    return rows


async def prepare_all(url: str) -> None:
    async with Client(f"{url}/mcp/") as client:
        for name in ("facts", "lies"):
            await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
            job = await client.call_tool("dataset_prepare", {"dataset": name, "dedup": "none", "test_fraction": 0.5})
            await client.call_tool("job_wait", {"job_id": job.structured_content["job_id"], "timeout_s": 120})
        for name in ("colours",):
            await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
        for name in ("greet", "prefs", "notes", "verdicts"):
            await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
            job = await client.call_tool("dataset_prepare", {"dataset": name, "dedup": "exact", "test_fraction": 0.2})
            await client.call_tool("job_wait", {"job_id": job.structured_content["job_id"], "timeout_s": 120})


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[tuple[ServerProcess, Path]]:
    home = tmp_path_factory.mktemp("methods") / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=200)
    write_jsonl(home / "prefs.jsonl", preference_rows(200))
    write_jsonl(home / "notes.jsonl", text_rows(300))
    write_jsonl(home / "verdicts.jsonl", labeled_rows(200))
    write_jsonl(home / "colours.jsonl", colour_chats(96))
    write_jsonl(home / "facts.jsonl", fact_rows(truthful=True))
    write_jsonl(home / "lies.jsonl", fact_rows(truthful=False))
    with ServerProcess(home) as live:
        asyncio.run(prepare_all(live.url))
        yield live, home


async def train(url: str, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[float]]]:
    full = {"base_model": "models/tiny", "max_steps": 20, "logging_steps": 1, **spec}
    async with Client(f"{url}/mcp/") as client:
        started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": full})
        assert not started.is_error, started.content
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
        metrics = await client.call_tool("job_metrics", {"job_id": started.structured_content["job_id"]})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job
    return job["result"], {s["name"]: [p["value"] for p in s["points"]] for s in metrics.structured_content["series"]}


async def plan(url: str, spec: dict[str, Any]) -> dict[str, Any]:
    async with Client(f"{url}/mcp/") as client:
        planned = await client.call_tool("train_plan", {"recipe": "sft-lora-tiny", "spec": spec})
    assert not planned.is_error, planned.content
    return planned.structured_content


def test_dpo_reward_accuracy_rises(trainer: tuple[ServerProcess, Path]) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": "prefs", "method": "dpo"}))
    accuracy = series["reward_accuracy"]
    assert accuracy[-1] > accuracy[0] and accuracy[-1] >= 0.9, accuracy
    assert series["reward_margin"][-1] > series["reward_margin"][0]


def test_orpo_raises_the_chosen_over_rejected_margin(trainer: tuple[ServerProcess, Path]) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": "prefs", "method": "orpo"}))
    margin = series["reward_margin"]
    assert margin[-1] > margin[0] and margin[-1] > 0, margin
    assert series["chosen_logps"][-1] > series["chosen_logps"][0]  # it learns the chosen answers, too (ORPO's NLL term)
    assert result["method"] == "orpo" and "log_odds_ratio" in result["method_metrics"]


@pytest.mark.parametrize("dataset", ["prefs", "verdicts"])
def test_kto_raises_the_margin_from_pairs_and_from_labeled_answers(trainer: tuple[ServerProcess, Path], dataset: str) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": dataset, "method": "kto"}))
    margin = series["reward_margin"]
    assert margin[-1] > margin[0] and margin[-1] > 0, margin
    assert "kl" in series and result["method_metrics"]["reward_margin"] == pytest.approx(margin[-1], rel=1e-4)


def test_a_reward_model_ranks_held_out_chosen_above_rejected(trainer: tuple[ServerProcess, Path]) -> None:
    spec = {"dataset": "prefs", "method": "reward", "eval_split": "test"}
    result, series = asyncio.run(train(trainer[0].url, spec))
    accuracy = series["eval_reward_accuracy"]  # before training, then after
    assert accuracy[-1] >= 0.8 and accuracy[-1] > accuracy[0], accuracy
    adapter = json.loads((trainer[1] / result["adapter"] / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_CLS"

    async def use_it() -> str:  # registered, it is refused where a model must write text
        async with Client(f"{trainer[0].url}/mcp/") as client:
            registered = await client.call_tool("model_register", {"name": "greeting-rm", "path": result["adapter"],
                                                                   "base_model": "models/tiny"})  # fmt: skip
            assert not registered.is_error, registered.content
            refused = await client.call_tool("model_evaluate", {"model": "greeting-rm", "dataset": "greet"})
        assert refused.is_error
        return refused.content[0].text

    assert "greeting-rm@v1 is a reward model" in asyncio.run(use_it())


def test_grpo_with_an_exact_match_reward_raises_the_mean_reward(trainer: tuple[ServerProcess, Path]) -> None:
    spec = {"dataset": "colours", "method": "grpo", "rewards": [{"name": "exact_match"}], "max_steps": 40,
            "batch_size": 16, "num_generations": 4, "max_completion_length": 16, "temperature": 1.5, "learning_rate": 3e-3}  # fmt: skip
    result, series = asyncio.run(train(trainer[0].url, spec))
    reward = series["reward"]
    assert len(reward) == 40 and series["reward_exact_match"] == reward  # one reward function, weight 1
    first, last = sum(reward[:10]) / 10, sum(reward[-10:]) / 10
    print(f"GRPO mean reward, steps 1-10: {first:.3f}, steps 31-40: {last:.3f}; curve {[round(r, 3) for r in reward]}")
    assert last > first, reward


def test_grpo_with_an_llm_judge_reward_asks_the_judge_about_every_sampled_answer(trainer: tuple[ServerProcess, Path]) -> None:
    """The judge (a scripted OpenAI-compatible server on loopback) gives 5 to an answer that is its
    reference and 1 to any other: its reward, scaled to 0..1, is the exact-match reward."""
    import re

    from forge_mcp.backends.scripted_llm import ScriptedLLM

    def grade(body: dict[str, Any]) -> str:
        _, reference, answer = re.findall(r"<<<\n(.*?)\n>>>", body["messages"][-1]["content"], re.DOTALL)
        return json.dumps({"score": 5 if answer.strip() == reference.strip() else 1, "reason": "compared"})

    with ScriptedLLM(grade, model="judge-1") as judge:
        spec = {"dataset": "colours", "method": "grpo", "max_steps": 4, "batch_size": 8, "num_generations": 4,
                "max_completion_length": 16, "rewards": [{"name": "exact_match"},
                                                         {"name": "llm_judge", "judge_url": judge.url, "judge_model": "judge-1"}]}  # fmt: skip
        result, series = asyncio.run(train(trainer[0].url, spec))
        asked = len(judge.completions())
    assert asked == 4 * 8  # every sampled answer of every step
    assert series["reward_llm_judge"] == pytest.approx(series["reward_exact_match"])
    assert series["reward"] == pytest.approx([2 * r for r in series["reward_exact_match"]])  # weights 1 and 1, summed


def test_an_unknown_reward_and_an_unfit_data_kind_are_each_one_clear_error_before_any_job(
    trainer: tuple[ServerProcess, Path],
) -> None:
    base = {"base_model": "models/tiny", "max_steps": 5}

    async def scenario() -> tuple[list[str], int, int]:
        async with Client(f"{trainer[0].url}/mcp/") as client:
            before = (await client.call_tool("job_list", {"kind": "train", "limit": 200})).structured_content["jobs"]
            refusals = []
            for spec in ({**base, "dataset": "colours", "method": "grpo", "rewards": [{"name": "shell", "command": "rm"}]},
                         {**base, "dataset": "greet", "method": "orpo"},
                         {**base, "dataset": "prefs", "method": "grpo", "rewards": [{"name": "exact_match"}]}):  # fmt: skip
                for tool in ("train_plan", "train_start"):
                    refused = await client.call_tool(tool, {"recipe": "sft-lora-tiny", "spec": spec})
                    assert refused.is_error, refused.structured_content
                    refusals.append(refused.content[0].text)
            after = (await client.call_tool("job_list", {"kind": "train", "limit": 200})).structured_content["jobs"]
        return refusals, len(before), len(after)

    refusals, before, after = asyncio.run(scenario())
    assert after == before  # nothing was queued
    assert all("'shell' is not a reward; choose from exact_match, contains, regex" in r for r in refusals[:2]), refusals
    assert all("orpo learns from preference data, and greet is messages; use method sft or cpt or grpo" in r
               for r in refusals[2:4]), refusals  # fmt: skip
    assert all("grpo learns from messages data" in r and "use method dpo or orpo or kto or reward" in r
               for r in refusals[4:]), refusals  # fmt: skip


def test_cpt_lowers_held_out_perplexity_with_general_data_mixed_in(trainer: tuple[ServerProcess, Path]) -> None:
    spec = {"dataset": "notes", "method": "cpt", "eval_split": "test", "eval_steps": 5,
            "general_dataset": "greet", "mix_ratio": 0.2}  # fmt: skip
    result, series = asyncio.run(train(trainer[0].url, spec))
    perplexity = [math.exp(v) for v in series["eval_loss"]]
    assert len(perplexity) >= 3 and perplexity[-1] < 0.5 * perplexity[0], perplexity
    notes_train = asyncio.run(plan(trainer[0].url, {**spec, "base_model": "models/tiny"}))["train_rows"]
    assert result["train_rows"] == notes_train + round(notes_train * 0.2 / 0.8)  # a fifth of the rows are general


def test_mlx_cpt_lowers_held_out_perplexity(trainer: tuple[ServerProcess, Path]) -> None:
    spec = {"dataset": "notes", "method": "cpt", "backend": "mlx", "eval_split": "test", "eval_steps": 5}
    result, series = asyncio.run(train(trainer[0].url, spec))
    assert result["final_eval_loss"] < 0.7 * result["base_eval_loss"], result
    assert (trainer[1] / result["adapter"] / "adapters.safetensors").is_file()


def test_qlora_trains_a_4bit_base(trainer: tuple[ServerProcess, Path]) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": "greet", "adapter": "qlora"}))
    assert result["base_quantized_4bit"] is True
    assert series["loss"][-1] < series["loss"][0]
    assert (trainer[1] / result["adapter"] / "adapter_model.safetensors").is_file()


def test_full_fine_tuning_writes_whole_weights(trainer: tuple[ServerProcess, Path]) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": "greet", "adapter": "full", "learning_rate": 1e-3}))
    model = trainer[1] / result["adapter"]
    assert result["adapter"].endswith("/model") and (model / "model.safetensors").is_file() and (model / "config.json").is_file()
    assert series["loss"][-1] < series["loss"][0]


async def test_train_start_over_a2a_streams_step_progress_and_returns_the_adapter(trainer: tuple[ServerProcess, Path]) -> None:
    from a2a.helpers import get_data_parts, new_data_part, new_message
    from a2a.types import Role, SendMessageRequest, TaskState

    # Enough steps that the run spans several of the engine's polls: progress is streamed as it is read.
    arguments = {"recipe": "sft-lora-tiny", "spec": {"base_model": "models/tiny", "dataset": "greet", "max_steps": 150,
                                                     "logging_steps": 5}}  # fmt: skip
    message = new_message([new_data_part({"tool": "train_start", "arguments": arguments})], role=Role.ROLE_USER)
    async with a2a_client(trainer[0].url) as client:
        events = [e async for e in client.send_message(SendMessageRequest(message=message))]
    updates = [e.status_update.status for e in events if e.HasField("status_update")]
    texts = [u.message.parts[0].text for u in updates if u.message.parts]
    assert sum(1 for t in texts if "step " in t and "loss" in t and "ETA" in t) >= 3, texts
    assert updates[-1].state == TaskState.TASK_STATE_COMPLETED
    [artifact] = [e.artifact_update.artifact for e in events if e.HasField("artifact_update")]
    result = get_data_parts(artifact.parts)[0]["result"]
    assert result["steps"] == 150 and (trainer[1] / result["adapter"] / "adapter_config.json").is_file()


def test_early_stopping_keeps_the_best_model(trainer: tuple[ServerProcess, Path]) -> None:
    spec = {"dataset": "greet", "max_steps": 400, "eval_split": "test", "eval_steps": 10, "early_stopping_patience": 2,
            "learning_rate": 0.01, "logging_steps": 10}  # fmt: skip
    result, _ = asyncio.run(train(trainer[0].url, spec))
    assert result["steps"] < 400 and result["final_eval_loss"] == result["best_eval_loss"], result
    assert any(w.startswith("early stopping:") for w in result["warnings"])


def test_two_data_parallel_processes_through_torchrun(trainer: tuple[ServerProcess, Path]) -> None:
    result, series = asyncio.run(train(trainer[0].url, {"dataset": "greet", "devices": 2}))
    assert result["processes"] == 2 and result["steps"] == 20
    assert series["loss"][-1] < series["loss"][0]
    run = trainer[1] / Path(result["output"]).parent
    assert (run / "events.rank1.jsonl").is_file()  # the second rank ran, and kept its own events


def test_evaluation_scores_known_answers(trainer: tuple[ServerProcess, Path]) -> None:
    """The tiny model knows its world's colours: it scores on the true answers, not on the false."""

    async def evaluate(dataset: str) -> dict[str, Any]:
        async with Client(f"{trainer[0].url}/mcp/") as client:
            started = await client.call_tool("model_evaluate", {"base_model": "models/tiny", "dataset": dataset,
                                                                "max_new_tokens": 12})  # fmt: skip
            done = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
        return done.structured_content["job"]["result"]

    truth, lies = asyncio.run(evaluate("facts")), asyncio.run(evaluate("lies"))
    assert truth["rows"] == lies["rows"] == 6
    assert truth["metrics"]["exact_match"] >= 0.8 and lies["metrics"]["exact_match"] == 0.0, (truth, lies)
    assert truth["loss"] < lies["loss"]
