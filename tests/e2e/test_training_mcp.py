"""Training through the MCP client against a live server: the tiny model learns a task it
did not know (loss falls, generations change), and bad specs get one clear error each."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess

pytestmark = pytest.mark.e2e
NAMES = ("ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal")


def greetings(path: Path, rows: int = 300) -> None:
    rng = random.Random(0)
    with path.open("w") as f:
        for _ in range(rows):
            name = f"{rng.choice(NAMES)}{rng.randrange(100)}"
            chat = [{"role": "user", "content": f"Greet {name}."}, {"role": "assistant", "content": f"Hello, {name}!"}]
            f.write(json.dumps({"messages": chat}) + "\n")


def generate(model_dir: Path, adapter: Path | None, prompts: list[str]) -> list[str]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    out = []
    for prompt in prompts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)  # fmt: skip
        tokens = model.generate(**ids, max_new_tokens=12, do_sample=False)
        out.append(tokenizer.decode(tokens[0][ids["input_ids"].shape[1] :], skip_special_tokens=True))
    return out


async def test_sft_lora_through_mcp_lowers_the_loss_and_changes_generations(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl")
    spec = {"base_model": "models/tiny", "dataset": "greet", "eval_split": "test"}
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
            prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
            await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})
            plan = await client.call_tool("train_plan", {"recipe": "sft-lora-tiny", "spec": spec})
            assert not plan.is_error, plan.content
            assert plan.structured_content["backend"] == "hf" and plan.structured_content["memory"]["fits"]
            started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec})
            assert not started.is_error, started.content
            job_id = started.structured_content["job_id"]
            waited = await client.call_tool("job_wait", {"job_id": job_id, "timeout_s": 300})
            metrics = await client.call_tool("job_metrics", {"job_id": job_id})
            registered = await client.call_tool("model_register", {"name": "greeter", "job_id": job_id})
            base_loss = waited.structured_content["job"]["result"]["base_eval_loss"]
            refused = await client.call_tool("model_promote", {"model": "greeter", "stage": "staging",
                                                               "gate": {"final_eval_loss": "< 0.01"}})  # fmt: skip
            promoted = await client.call_tool("model_promote", {"model": "greeter@v1", "stage": "staging",
                                                                "gate": {"final_eval_loss": f"< {base_loss}"}})  # fmt: skip
            card = await client.read_resource("forge://models/greeter")
            evaluations = {}
            for target in ({"model": "greeter@v1"}, {"base_model": "models/tiny"}):
                started_eval = await client.call_tool("model_evaluate", {**target, "dataset": "greet", "limit": 20,
                                                                         "max_new_tokens": 12})  # fmt: skip
                assert not started_eval.is_error, started_eval.content
                done = await client.call_tool("job_wait", {"job_id": started_eval.structured_content["job_id"], "timeout_s": 300})
                evaluations[next(iter(target))] = done.structured_content["job"]
            evaluated = await client.call_tool("model_get", {"model": "greeter@v1"})
    assert not registered.is_error, registered.content
    lineage = registered.structured_content
    assert lineage["job_id"] == job_id and lineage["base_model"] == "models/tiny" and lineage["kind"] == "adapter"
    assert lineage["dataset_fingerprint"] == plan.structured_content["dataset_fingerprint"]
    assert refused.is_error and "gate: greeter@v1 stays registered — final_eval_loss is" in refused.content[0].text
    assert promoted.structured_content["stage"] == "staging"
    assert json.loads(card.contents[0].text)["model"]["stage"] == "staging"  # type: ignore[union-attr]
    assert (home / lineage["path"] / "README.md").is_file() and (home / lineage["path"] / "adapter_config.json").is_file()
    tuned, base = (evaluations[k]["result"] for k in ("model", "base_model"))
    assert tuned["rows"] == base["rows"] == 20 and tuned["loss"] < base["loss"], (tuned, base)
    assert set(tuned["metrics"]) == {"exact_match", "contains", "rouge_l"} and len(tuned["examples"]) == 3
    stored = evaluated.structured_content["model"]["metrics"]
    assert stored["eval_loss"] == tuned["loss"] and stored["rouge_l"] == tuned["metrics"]["rouge_l"]
    assert stored["evaluated_on"] == "greet@v2:test"
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", job
    result = job["result"]
    assert result["steps"] == 40 and result["final_loss"] < 0.8 * result["first_loss"], result
    assert result["dataset_fingerprint"] == plan.structured_content["dataset_fingerprint"]
    assert result["final_eval_loss"] < result["base_eval_loss"]  # held out: it beats the base model
    series = {s["name"]: s for s in metrics.structured_content["series"]}
    assert {"loss", "learning_rate", "grad_norm", "eval_loss", "tokens_per_s"} <= series.keys()
    adapter = home / result["adapter"]
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    output = home / result["output"]
    assert json.loads((output / "spec.json").read_text())["lora_r"] == 8
    assert "torch" in json.loads((output / "environment.json").read_text())["packages"]
    prompts = ["Greet ann7.", "Greet hal42.", "Greet eve3."]
    assert generate(home / "models" / "tiny", adapter, prompts) != generate(home / "models" / "tiny", None, prompts)


async def test_bad_training_specs_get_one_clear_error_each(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=40)
    pair = {"prompt": "Greet ann.", "chosen": "Hello, ann!", "rejected": "No."}
    (home / "prefs.jsonl").write_text("".join(json.dumps({**pair, "prompt": f"Greet ann{i}."}) + "\n" for i in range(20)))
    base = {"base_model": "models/tiny", "dataset": "greet"}
    cases = {
        "negative lr": ({**base, "learning_rate": -0.1}, "'learning_rate': Input should be greater than 0"),
        "unknown method": ({**base, "method": "rlhf"}, "'method': Input should be 'sft', 'dpo', 'cpt', 'orpo', 'kto', "
                                                       "'reward' or 'grpo'"),
        "preference data for sft": ({**base, "dataset": "prefs"}, "dataset: sft learns from messages data, and prefs is "
                                                                   "preference; use method dpo or orpo or kto or reward"),
        "chat data for dpo": ({**base, "method": "dpo"}, "dataset: dpo learns from preference data"),
        "a tracker that is not installed": ({**base, "report_to": ["mlflow"]}, "report_to: mlflow is not installed"),
        "missing base model": ({**base, "base_model": "models/nope"}, "'spec.base_model': nothing exists at models/nope"),
        "max_length over the limit": ({**base, "max_length": 4096}, "max_length: 4096 is over the model's limit of 512"),
        "missing split": ({**base, "eval_split": "validation"}, "eval_split: greet@v2 has no split 'validation'"),
        "outside the workspace": ({**base, "base_model": "/etc"}, "spec.base_model"),
    }
    with ServerProcess(home) as live:
        async with Client(f"{live.url}/mcp/") as client:
            for name in ("greet", "prefs"):
                await client.call_tool("dataset_import", {"path": f"{name}.jsonl", "name": name})
                prepared = await client.call_tool("dataset_prepare", {"dataset": name})
                await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})
            for case, (spec, expected) in cases.items():
                for tool in ("train_plan", "train_start"):
                    answer = await client.call_tool(tool, {"spec": spec})
                    assert answer.is_error, (case, tool)
                    assert expected in answer.content[0].text, (case, tool, answer.content[0].text)
                    assert "Traceback" not in answer.content[0].text
            jobs = await client.call_tool("job_list", {"kind": "train"})
    assert jobs.structured_content["jobs"] == []  # no bad spec ever became a job
