"""Export and serving through the MCP client against a live server: every export format
loads back and agrees with its source; a served version answers an OpenAI client and
litellm, streaming too; serve_stop frees the port; a killed service shows FAILED."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from forge_mcp.workspace import Workspace
from tests.e2e.test_training_mcp import greetings
from tests.polling import until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[tuple[ServerProcess, Path]]:
    """A live server with `bot@v1`: a LoRA adapter trained 20 steps on greetings."""
    home = tmp_path_factory.mktemp("serving") / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=120)
    with ServerProcess(home) as live:
        asyncio.run(_train_and_register(live.url))
        yield live, home


async def _train_and_register(url: str) -> None:
    async with Client(f"{url}/mcp/") as client:
        await client.call_tool("dataset_import", {"path": "greet.jsonl", "name": "greet"})
        prepared = await client.call_tool("dataset_prepare", {"dataset": "greet", "dedup": "exact"})
        await client.call_tool("job_wait", {"job_id": prepared.structured_content["job_id"], "timeout_s": 120})
        spec = {"base_model": "models/tiny", "dataset": "greet", "max_steps": 20}
        started = await client.call_tool("train_start", {"recipe": "sft-lora-tiny", "spec": spec})
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
        assert waited.structured_content["job"]["state"] == "SUCCEEDED", waited.structured_content
        registered = await client.call_tool("model_register", {"name": "bot", "job_id": started.structured_content["job_id"]})
        assert not registered.is_error, registered.content


async def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(f"{url}/mcp/") as client:
        return await client.call_tool(tool, arguments)


async def export(url: str, arguments: dict[str, Any]) -> dict[str, Any]:
    async with Client(f"{url}/mcp/") as client:
        started = await client.call_tool("model_export", arguments)
        assert not started.is_error, started.content
        waited = await client.call_tool("job_wait", {"job_id": started.structured_content["job_id"], "timeout_s": 300})
    job = waited.structured_content["job"]
    assert job["state"] == "SUCCEEDED", (job["error"], job["reason"])
    return job["result"]


def source_next_tokens(home: Path, text_ids: list[int]) -> list[int]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(home / "models/tiny"), home / "models/bot/v1")
    with torch.no_grad():
        return model(torch.tensor([text_ids])).logits[0].argmax(-1).tolist()


def test_every_export_format_verifies_itself_and_loads_back(served: tuple[ServerProcess, Path]) -> None:
    live, home = served
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    results = {key: asyncio.run(export(live.url, {"model": "bot@v1", **arguments})) for key, arguments in {
        "adapter": {"format": "adapter"}, "merged": {"format": "merged"},
        "gguf-f16": {"format": "gguf", "quantization": "f16"}, "gguf-q8_0": {"format": "gguf"},
        "gguf-q4_k_m": {"format": "gguf", "quantization": "q4_k_m"},
    }.items()}  # fmt: skip
    for key, result in results.items():
        folder = home / "models/bot/v1/exports" / key
        manifest = json.loads((folder / "manifest.json").read_text())
        assert result["path"] == f"models/bot/v1/exports/{key}" and manifest["verification"]["passed"], (key, manifest)
        assert result["verification"]["positions"] > 40
    assert results["adapter"]["verification"]["top1_agreement"] == 1.0
    assert results["merged"]["verification"]["max_abs_logit_diff"] < 1e-3
    assert results["gguf-f16"]["verification"]["tokenizer_matches"] is True
    assert results["gguf-q8_0"]["files"]["bot-v1-q8_0.gguf"] < results["gguf-f16"]["files"]["bot-v1-f16.gguf"]
    assert results["gguf-q8_0"]["modelfile"].startswith("FROM ./bot-v1-q8_0.gguf")
    assert (home / "models/bot/v1/exports/gguf-q8_0/Modelfile").is_file()

    # Loaded back here, independently of the job: the same next tokens as base + adapter.
    tokenizer = AutoTokenizer.from_pretrained(home / "models/tiny")
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "Greet ann7."}], add_generation_prompt=True,
                                        tokenize=True, return_dict=True)["input_ids"]  # fmt: skip
    expected = source_next_tokens(home, ids)
    merged = AutoModelForCausalLM.from_pretrained(home / "models/bot/v1/exports/merged")
    import torch

    with torch.no_grad():
        assert merged(torch.tensor([ids])).logits[0].argmax(-1).tolist() == expected
    llm = Llama(model_path=str(home / "models/bot/v1/exports/gguf-q8_0/bot-v1-q8_0.gguf"), n_ctx=256, logits_all=True, verbose=False)
    llm.eval(ids)
    import numpy as np

    agreement = float(np.mean(np.array(llm.scores[: len(ids)]).argmax(-1) == np.array(expected)))
    llm.close()
    assert agreement >= 0.95, agreement

    detail = asyncio.run(call(live.url, "model_get", {"model": "bot@v1"})).structured_content
    assert {e["key"] for e in detail["exports"]} == set(results)


def test_export_refuses_bad_arguments_with_clear_errors(served: tuple[ServerProcess, Path]) -> None:
    live, _ = served
    cases = {
        "quantization": {"model": "bot@v1", "format": "merged", "quantization": "q8_0"},
        "model_list": {"model": "nobody@v9", "format": "gguf"},
        "model:": {"model": "../../etc", "format": "gguf"},
        "push_to_hub": {"model": "bot@v1", "format": "adapter", "push_to_hub": "not a repo id"},
        "format": {"model": "bot@v1", "format": "onnx"},
    }
    for needle, arguments in cases.items():
        result = asyncio.run(call(live.url, "model_export", arguments))
        assert result.is_error and needle in result.content[0].text, (arguments, result.content)


def test_push_to_hub_offline_says_so_before_any_job(served: tuple[ServerProcess, Path]) -> None:
    live, _ = served
    result = asyncio.run(call(live.url, "model_export", {"model": "bot@v1", "format": "adapter", "push_to_hub": "acme/bot"}))
    assert result.is_error and "push_to_hub" in result.content[0].text, result.content
    jobs = asyncio.run(call(live.url, "job_list", {"kind": "export", "limit": 100})).structured_content
    assert all(j["arguments"].get("push_to_hub") is None for j in jobs["jobs"])


def start_service(url: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """serve_start through MCP, and an OpenAI client for the endpoint it returned."""
    import openai

    started = asyncio.run(call(url, "serve_start", arguments))
    assert not started.is_error, started.content
    service = started.structured_content
    return service, openai.OpenAI(base_url=service["url"], api_key=service["api_key"], max_retries=0, timeout=60)


async def once_failed(url: str, job_id: str) -> dict[str, Any]:
    """serve_list's entry for a service, once it shows as failed (bounded wait)."""
    entry: dict[str, Any] = {}

    async def failed() -> bool:
        listed = await call(url, "serve_list", {"include_ended": True})
        assert not listed.is_error, listed.content
        entry.update(next((s for s in listed.structured_content["services"] if s["job_id"] == job_id), {}))
        return entry.get("state") == "failed"

    await until(failed, 30, f"service {job_id} to show as failed")
    return entry


async def stop_declined(url: str, job_id: str) -> Any:
    """serve_stop from a client whose user declines the confirmation."""
    from mcp.types import ElicitResult

    async def decline(context: Any, params: Any) -> ElicitResult:
        return ElicitResult(action="decline")

    async with Client(f"{url}/mcp/", elicitation_callback=decline) as client:  # type: ignore[arg-type]
        return await client.call_tool("serve_stop", {"service": job_id})


def port_is_free(port: int) -> bool:
    """Nothing listens there, and a new server can listen there (with SO_REUSEADDR, as
    servers do: connections the old one closed may linger in TIME_WAIT)."""
    with socket.socket() as client:
        if client.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_llama_cpp_service_answers_openai_and_litellm_then_stops_cleanly(served: tuple[ServerProcess, Path]) -> None:
    live, home = served
    if not (home / "models/bot/v1/exports/gguf-q8_0").exists():
        asyncio.run(export(live.url, {"model": "bot@v1", "format": "gguf"}))
    service, client = start_service(live.url, {"model": "bot@v1", "engine": "llama_cpp", "threads": 2})
    assert service["url"].startswith("http://127.0.0.1:") and service["engine"] == "llama_cpp"
    port = int(service["url"].rsplit(":", 1)[1].split("/")[0])

    import openai

    assert [m.id for m in client.models.list().data] == ["bot@v1"]
    answer = client.chat.completions.create(model="bot@v1", messages=[{"role": "user", "content": "Greet ann7."}],
                                            max_tokens=12, temperature=0)  # fmt: skip
    text = answer.choices[0].message.content
    assert text and answer.usage.completion_tokens > 0
    pieces = client.chat.completions.create(model="bot@v1", messages=[{"role": "user", "content": "Greet ann7."}],
                                            max_tokens=12, temperature=0, stream=True)  # fmt: skip
    assert "".join(p.choices[0].delta.content or "" for p in pieces) == text  # greedy: streamed equals whole
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=service["url"], api_key="wrong", max_retries=0).models.list()

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    reply = litellm.completion(model="openai/bot@v1", api_base=service["url"], api_key=service["api_key"],
                               messages=[{"role": "user", "content": "Greet ann7."}], max_tokens=12, temperature=0)  # fmt: skip
    assert reply.choices[0].message.content == text

    generated = asyncio.run(call(live.url, "model_generate", {"model": "bot@v1", "prompt": "Greet ann7.", "max_tokens": 12}))
    assert generated.structured_content["via"] == f"service {service['job_id']}"
    assert generated.structured_content["text"] == text

    listed = asyncio.run(call(live.url, "serve_list", {})).structured_content["services"]
    assert [(s["job_id"], s["state"], s["healthy"]) for s in listed] == [(service["job_id"], "serving", True)]
    worker_pid = json.loads(Workspace(home).run(service["job_id"]).service.read_text())["pid"]
    stopped = asyncio.run(call(live.url, "serve_stop", {"service": service["job_id"]}))
    assert stopped.structured_content["state"] == "stopped"
    assert port_is_free(port) and not pid_alive(worker_pid)
    again = asyncio.run(call(live.url, "serve_stop", {"service": service["job_id"]}))
    assert again.structured_content["state"] == "stopped"


def test_transformers_service_serves_the_adapter_unmerged_and_a_crash_marks_it_failed(served: tuple[ServerProcess, Path]) -> None:
    live, home = served
    service, client = start_service(live.url, {"model": "bot@v1", "engine": "transformers"})
    answer = client.chat.completions.create(model="bot@v1", messages=[{"role": "user", "content": "Greet bob3."}],
                                            max_tokens=10, temperature=0)  # fmt: skip
    streamed = client.chat.completions.create(model="bot@v1", messages=[{"role": "user", "content": "Greet bob3."}],
                                              max_tokens=10, temperature=0, stream=True)  # fmt: skip
    assert "".join(p.choices[0].delta.content or "" for p in streamed) == answer.choices[0].message.content
    # The chat operator on the served version: forge:bot@v1 is its service, whose key serve_list gives.
    listed = asyncio.run(call(live.url, "serve_list", {})).structured_content["services"]
    assert [s["api_key"] for s in listed] == [service["api_key"]]
    chat = subprocess.run(
        [sys.executable, "-m", "forge_mcp", "--home", str(home.parent / "chat-ws"), "chat", "--url", live.url,
         "--model", "forge:bot@v1"], input="Greet bob3.\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert chat.returncode == 0, chat.stderr
    assert f"model openai/bot@v1 at {service['url']}" in chat.stdout and "✗" not in chat.stdout, chat.stdout
    pid = json.loads(Workspace(home).run(service["job_id"]).service.read_text())["pid"]
    os.kill(pid, signal.SIGKILL)

    entry = asyncio.run(once_failed(live.url, service["job_id"]))
    assert "signal 9" in entry["error"] and entry["url"] is None
    assert not asyncio.run(call(live.url, "serve_list", {})).structured_content["services"]  # not retried


def test_model_generate_without_a_service_runs_a_short_job(served: tuple[ServerProcess, Path]) -> None:
    live, _ = served
    generated = asyncio.run(call(live.url, "model_generate", {"model": "bot@v1", "prompt": "Greet cy1.", "max_tokens": 8}))
    assert not generated.is_error, generated.content
    assert generated.structured_content["via"].startswith("job ") and generated.structured_content["completion_tokens"] > 0


def test_serve_start_refuses_bad_arguments_with_clear_errors(served: tuple[ServerProcess, Path]) -> None:
    live, home = served
    asyncio.run(call(live.url, "model_register", {"name": "plain", "path": "models/tiny"}))
    cases = {
        "has no GGUF export": {"model": "plain@v1", "engine": "llama_cpp"},
        "vllm_command": {"model": "bot@v1", "engine": "vllm"},
        "port": {"model": "bot@v1", "port": 80},
        "model_list": {"model": "ghost"},
        "model:": {"model": "a/../b"},
    }
    for needle, arguments in cases.items():
        result = asyncio.run(call(live.url, "serve_start", arguments))
        assert result.is_error and needle in result.content[0].text, (arguments, result.content)
    unknown = asyncio.run(call(live.url, "serve_stop", {"service": "job_nope"}))
    assert unknown.is_error and "job_nope" in unknown.content[0].text
    some_job = asyncio.run(call(live.url, "job_list", {"kind": "train"})).structured_content["jobs"][0]["id"]
    not_service = asyncio.run(call(live.url, "serve_stop", {"service": some_job}))
    assert not_service.is_error and "not a service" in not_service.content[0].text
    listed = asyncio.run(call(live.url, "serve_list", {"include_ended": True})).structured_content["services"]
    assert all(s["model"] != "plain@v1" for s in listed)  # a refused start leaves no job behind


def test_vllm_runs_as_an_external_command_and_its_exit_fails_the_service(tmp_path: Path, tiny_model: Path) -> None:
    """vLLM cannot share our environment, so it is an operator-configured command; the
    scripted OpenAI server stands in for it (it takes vLLM's flags and ignores the rest)."""
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    stand_in = f"{sys.executable} -m forge_mcp.backends.scripted_llm --reply 'from the external engine'"
    with ServerProcess(home, env={"FORGE_VLLM_COMMAND": stand_in}) as live:
        asyncio.run(call(live.url, "model_register", {"name": "plain", "path": "models/tiny"}))
        started = asyncio.run(call(live.url, "serve_start", {"model": "plain@v1", "engine": "vllm", "wait_s": 180}))
        assert not started.is_error, started.content
        service = started.structured_content
        import openai

        client = openai.OpenAI(base_url=service["url"], api_key=service["api_key"], max_retries=0, timeout=30)
        answer = client.chat.completions.create(model="plain@v1", messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content == "from the external engine"
        declined = asyncio.run(stop_declined(live.url, service["job_id"]))
        assert declined.is_error and "stopping" in declined.content[0].text and "was declined" in declined.content[0].text
        assert client.models.list().data[0].id == "plain@v1"  # still serving
        log = Workspace(home).run(service["job_id"]).engine_log.read_text()
        assert "serving" in log and str(home / "models/plain/v1") in log  # launched with --model <the version's folder>
        engine_pid = json.loads(Workspace(home).run(service["job_id"]).service.read_text())["pid"]
        os.kill(engine_pid, signal.SIGKILL)

        assert "exited with code -9" in asyncio.run(once_failed(live.url, service["job_id"]))["error"]

        again = asyncio.run(call(live.url, "serve_start", {"model": "plain@v1", "engine": "vllm", "wait_s": 180}))
        assert not again.is_error, again.content  # under load a start can take longer: the refusal says why
        port = int(again.structured_content["url"].rsplit(":", 1)[1].split("/")[0])
        engine_pid = json.loads(Workspace(home).run(again.structured_content["job_id"]).service.read_text())["pid"]
        stopped = asyncio.run(call(live.url, "serve_stop", {"service": again.structured_content["job_id"]}))
        assert stopped.structured_content["state"] == "stopped"
        assert port_is_free(port) and not pid_alive(engine_pid)


def test_mlx_serves_a_full_model_and_refuses_a_peft_adapter(served: tuple[ServerProcess, Path]) -> None:
    live, _ = served
    asyncio.run(call(live.url, "model_register", {"name": "mlx-plain", "path": "models/tiny"}))
    refused = asyncio.run(call(live.url, "serve_start", {"model": "bot@v1", "engine": "mlx"}))
    assert refused.is_error and "PEFT adapter, which mlx-lm cannot load" in refused.content[0].text
    service, client = start_service(live.url, {"model": "mlx-plain@v1", "engine": "mlx"})
    answer = client.chat.completions.create(model="mlx-plain@v1", messages=[{"role": "user", "content": "What colour is the apple?"}],
                                            max_tokens=12, temperature=0)  # fmt: skip
    assert answer.choices[0].message.content == "The apple is orange."  # the tiny model's fact, through mlx-lm
    stopped = asyncio.run(call(live.url, "serve_stop", {"service": service["job_id"]}))
    assert stopped.structured_content["state"] == "stopped"


def test_model_generate_refuses_bad_arguments_with_clear_errors(served: tuple[ServerProcess, Path]) -> None:
    live, _ = served
    cases = {
        "model or service: give exactly one": {"prompt": "hi"},
        "give exactly one": {"prompt": "hi", "model": "bot@v1", "service": "job_x"},
        "'prompt'": {"prompt": "", "model": "bot@v1"},
        "'max_tokens'": {"prompt": "hi", "model": "bot@v1", "max_tokens": 0},
        "model_list": {"prompt": "hi", "model": "ghost@v3"},
        "job_nope": {"prompt": "hi", "service": "job_nope"},
    }
    for needle, arguments in cases.items():
        result = asyncio.run(call(live.url, "model_generate", arguments))
        assert result.is_error and needle in result.content[0].text, (arguments, result.content)


def test_a_service_outlives_a_server_crash_and_the_restarted_server_adopts_it(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    first = ServerProcess(home)
    with first:
        asyncio.run(call(first.url, "model_register", {"name": "plain", "path": "models/tiny"}))
        service, client = start_service(first.url, {"model": "plain@v1", "engine": "transformers"})
        first.process.kill()  # type: ignore[union-attr]  # kill -9: no shutdown of any kind
        first.process.wait()  # type: ignore[union-attr]
    question = [{"role": "user", "content": "What colour is the apple?"}]
    assert client.chat.completions.create(model="plain@v1", messages=question).choices[0].message.content == "The apple is orange."
    with ServerProcess(home) as second:
        listed = asyncio.run(call(second.url, "serve_list", {})).structured_content["services"]
        assert [(s["job_id"], s["state"], s["healthy"]) for s in listed] == [(service["job_id"], "serving", True)]
        stopped = asyncio.run(call(second.url, "serve_stop", {"service": service["job_id"]}))
        assert stopped.structured_content["state"] == "stopped"
        port = int(service["url"].rsplit(":", 1)[1].split("/")[0])
        assert port_is_free(port)
