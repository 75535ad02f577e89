"""Evaluation through the MCP client against a live server: a tuned version beats its base
side by side (table, examples, chart image, metrics stored on the version); an LLM judge
(the scripted stand-in on loopback) grades every answer and a reply without a score counts
as a failure, not a crash; judge URLs that are not for calling are refused; and promotion
to production asks for confirmation through elicitation — accepted, declined or cancelled
on both protocol generations, and not asked of a client that cannot answer."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import ElicitResult, ImageContent

from forge_mcp.backends.scripted_llm import ScriptedLLM
from forge_mcp.server_process import ServerProcess
from tests.e2e.test_training_mcp import greetings

pytestmark = pytest.mark.e2e
ROWS = 8  # evaluation rows: enough to tell a tuned model from its base, quick on a CPU
TOKENS = 8  # "Hello, eve42!" fits


@dataclass(frozen=True)
class Live:
    server: ServerProcess
    home: Path

    @property
    def mcp(self) -> str:
        return f"{self.server.url}/mcp/"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    answer = await client.call_tool(tool, arguments)
    assert not answer.is_error, (tool, answer.content)
    return answer.structured_content or {}


async def finished(client: Client, handle: dict[str, Any]) -> dict[str, Any]:
    waited = await call(client, "job_wait", {"job_id": handle["job_id"], "timeout_s": 300})
    job = waited["job"]
    assert job["state"] == "SUCCEEDED", job
    return job


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Live]:
    """A server with the tiny model and a prepared greetings dataset (chat, with a test split)."""
    home = tmp_path_factory.mktemp("evaluation") / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    greetings(home / "greet.jsonl", rows=300)

    async def prepare(url: str) -> None:
        async with Client(url) as client:
            await call(client, "dataset_import", {"path": "greet.jsonl", "name": "greet"})
            await finished(client, await call(client, "dataset_prepare", {"dataset": "greet", "dedup": "exact"}))

    with ServerProcess(home) as server:
        asyncio.run(prepare(f"{server.url}/mcp/"))
        yield Live(server, home)


@pytest.fixture(scope="module")
def tuned(live: Live) -> str:
    """greeter@v1: an adapter trained on the greetings (sft-lora-tiny: 40 steps)."""

    async def train() -> str:
        async with Client(live.mcp) as client:
            spec = {"base_model": "models/tiny", "dataset": "greet"}
            job = await finished(client, await call(client, "train_start", {"recipe": "sft-lora-tiny", "spec": spec}))
            return (await call(client, "model_register", {"name": "greeter", "job_id": job["id"]}))["id"]

    return asyncio.run(train())


class Grader:
    """The judge's script: 5 when the answer says what the reference says, else 1-4 by the
    prompt's length (a spread the test can recompute); the `garbled`-th call gets a reply
    with no score in it."""

    def __init__(self, garbled: int | None = None) -> None:
        self.garbled = garbled
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        with self._lock:
            self.calls += 1
            call = self.calls
        if call == self.garbled:
            return "What a lovely greeting! I would not change a thing."
        score = self.score(body)
        return json.dumps({"score": score, "reason": "matches the reference" if score == 5 else "a different answer"})

    @staticmethod
    def score(body: dict[str, Any]) -> int:
        prompt, reference, answer = re.findall(r"<<<\n(.*?)\n>>>", body["messages"][-1]["content"], re.DOTALL)
        return 5 if reference.strip() in answer else 1 + len(prompt) % 4


async def test_a_tuned_version_beats_its_base_side_by_side(live: Live, tuned: str) -> None:
    with ScriptedLLM(Grader(), model="judge-1") as judge:
        async with Client(live.mcp) as client:
            handle = await call(client, "model_compare", {"dataset": "greet", "model_a": tuned, "model_b": "base",
                                                          "limit": ROWS, "max_new_tokens": TOKENS,
                                                          "judge_url": judge.url, "judge_model": "judge-1"})  # fmt: skip
            job = await finished(client, handle)
            report = await client.call_tool("model_compare_report", {"job_id": handle["job_id"]})
            version = (await call(client, "model_get", {"model": tuned}))["model"]
            not_a_compare = await client.call_tool("model_compare_report", {"job_id": "job_00000000"})
        judged = judge.completions()
    result = job["result"]
    a, b = result["a"], result["b"]
    assert (a["model"], b["model"], a["rows"], b["rows"]) == (tuned, "models/tiny", ROWS, ROWS)
    rows = {r["metric"]: r for r in result["table"]}
    assert list(rows) == ["eval_loss", "perplexity", "exact_match", "contains", "rouge_l", "judge_score"]
    assert rows["eval_loss"]["a"] == a["loss"] < b["loss"] == rows["eval_loss"]["b"]
    assert rows["eval_loss"]["better"] == rows["perplexity"]["better"] == "a"
    assert rows["eval_loss"]["delta"] == pytest.approx(b["loss"] - a["loss"], abs=1e-3)
    assert (rows["judge_score"]["a"], rows["judge_score"]["b"]) == (a["metrics"]["judge_score"], b["metrics"]["judge_score"])
    assert len(judged) == 2 * ROWS  # every answer of both models graded once
    assert f"| eval_loss | {a['loss']:.4g} | {b['loss']:.4g} |" in result["table_text"]
    assert result["summary"].startswith(f"On greet@v2:test ({ROWS} rows), a ({tuned}) is better on eval_loss, perplexity")
    assert len(result["examples"]) == 5 and set(result["examples"][0]) == {"prompt", "reference", "a", "b"}
    assert result["examples"][0]["prompt"] == a["examples"][0]["prompt"] == b["examples"][0]["prompt"]
    assert result["chart"] == f"runs/{handle['job_id']}/compare.png" and (live.home / result["chart"]).is_file()
    # The report shows the same table, and the chart as an image.
    assert not report.is_error, report.content
    [image] = [c for c in report.content if isinstance(c, ImageContent)]
    assert image.mime_type == "image/png" and base64.b64decode(image.data) == (live.home / result["chart"]).read_bytes()
    assert report.structured_content["comparison"]["table_text"] == result["table_text"]
    # Results for a registered version are stored on it (the base is no version: nothing to store).
    assert version["metrics"]["eval_loss"] == a["loss"] and version["metrics"]["judge_score"] == a["metrics"]["judge_score"]
    assert version["metrics"]["evaluated_on"] == "greet@v2:test"
    assert not_a_compare.is_error and "no job 'job_00000000'" in not_a_compare.content[0].text


async def test_a_judge_grades_every_answer_and_a_reply_without_a_score_is_a_recorded_failure(live: Live, tuned: str) -> None:
    grader = Grader(garbled=2)
    with ScriptedLLM(grader, model="judge-1") as judge:
        async with Client(live.mcp) as client:
            handle = await call(client, "model_evaluate", {"model": tuned, "dataset": "greet", "limit": ROWS,
                                                           "max_new_tokens": TOKENS, "judge_url": judge.url,
                                                           "judge_model": "judge-1"})  # fmt: skip
            job = await finished(client, handle)
            version = (await call(client, "model_get", {"model": tuned}))["model"]
            report = await client.call_tool("model_compare_report", {"job_id": handle["job_id"]})
        judged = judge.completions()
    result = job["result"]
    assert job["arguments"]["judge"] == {"url": judge.url, "model": "judge-1", "api_key_env": None}
    # The judge was asked about every row: the dataset's own prompts, references and the model's answers.
    assert len(judged) == ROWS and {r["model"] for r in judged} == {"judge-1"}
    asked = [r["messages"][-1]["content"] for r in judged]
    for example in result["examples"]:
        assert any(f"user: {example['prompt']}" in text and f"<<<\n{example['reference']}\n>>>" in text for text in asked)
    assert all("Score 1-5" in r["messages"][0]["content"] for r in judged)
    summary = result["judge"]
    assert summary["model"] == "judge-1" and (summary["graded"], summary["failures"]) == (ROWS - 1, 1)
    assert summary["failure_reasons"] == ["row 1: reply holds no score: expected {\"score\": 1-5, \"reason\": \"...\"}, "
                                          "got 'What a lovely greeting! I would not change a thing.'"]  # fmt: skip
    assert result["examples"][1]["judge"].startswith("no score: reply holds no score")
    assert result["metrics"]["judge_failures"] == 1.0 and 0.0 <= result["metrics"]["judge_score"] <= 1.0
    graded = [Grader.score(r) for i, r in enumerate(judged) if i != 1]  # the second reply held no score
    assert result["metrics"]["judge_score"] == round(sum((s - 1) / 4 for s in graded) / len(graded), 4)
    assert len(set(graded)) > 1  # a spread of scores, so the mean means something
    assert version["metrics"]["judge_score"] == result["metrics"]["judge_score"]
    assert report.is_error and "is a evaluate job; give a job that model_compare started" in report.content[0].text


@pytest.mark.parametrize(("arguments", "message"), [
    ({"judge_url": "http://169.254.169.254/latest/meta-data/", "judge_model": "m"},
     "judge_url: 169.254.169.254 is a link-local or cloud-metadata address"),
    ({"judge_url": "http://[fd00:ec2::254]/v1", "judge_model": "m"}, "judge_url: fd00:ec2::254 is a link-local"),
    ({"judge_url": "file:///etc/passwd", "judge_model": "m"}, "judge_url: only http:// and https:// URLs are allowed"),
    ({"judge_url": "http://127.0.0.1:9/v1"}, "judge_model: name the model the judge endpoint serves"),
    ({"judge_model": "m"}, "judge_url: give the judge's OpenAI-compatible endpoint"),
    ({"judge_url": "http://127.0.0.1:9/v1", "judge_model": "m", "judge_api_key_env": "FORGE_TEST_UNSET_KEY"},
     "judge_api_key_env: the environment variable FORGE_TEST_UNSET_KEY is not set on the server"),
    ({"judge_url": "http://10.1.2.3:9/v1", "judge_model": "m", "judge_api_key_env": "PATH"},
     "judge_api_key_env: the key would cross the network unencrypted"),
    ({"judge_url": "http://127.0.0.1:9/v1", "judge_model": "m", "judge_api_key_env": "sk-live-123;rm"},
     "'judge_api_key_env': String should match pattern"),
])  # fmt: skip
async def test_judge_settings_that_are_not_for_calling_are_refused(live: Live, tuned: str, arguments: dict[str, Any],
                                                                   message: str) -> None:  # fmt: skip
    async with Client(live.mcp) as client:
        before = (await call(client, "job_list", {}))["counts"]
        for tool, target in (("model_evaluate", {"base_model": "models/tiny"}), ("model_compare", {"model_a": tuned})):
            answer = await client.call_tool(tool, {"dataset": "greet", **target, **arguments})
            assert answer.is_error and message in answer.content[0].text, (tool, answer.content[0].text)
        after = (await call(client, "job_list", {}))["counts"]
    assert after == before  # nothing refused became a job


class Answers:
    """An elicitation callback that answers `action` and remembers what it was asked."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.asked: list[str] = []

    async def __call__(self, context: Any, params: Any) -> ElicitResult:
        self.asked.append(params.message)
        assert set(params.requested_schema["properties"]) == {"confirm"}
        content = {"confirm": True} if self.action == "accept" else None
        return ElicitResult(action=self.action, content=content)  # type: ignore[arg-type]


async def register_two(client: Client, name: str) -> None:
    for _ in range(2):
        await call(client, "model_register", {"name": name, "path": "models/tiny"})
    await call(client, "model_promote", {"model": f"{name}@v1", "stage": "production"})  # a production to replace


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 (input_required) and the handshake era (mid-call request)
async def test_promotion_to_production_asks_and_an_accepted_confirmation_promotes(live: Live, mode: str) -> None:
    name = f"confirmed-{mode}"
    async with Client(live.mcp) as plain:
        await register_two(plain, name)
    answers = Answers("accept")
    async with Client(live.mcp, elicitation_callback=answers, mode=mode) as client:  # type: ignore[arg-type]
        staged = await call(client, "model_promote", {"model": f"{name}@v2", "stage": "staging"})
        promoted = await call(client, "model_promote", {"model": f"{name}@v2", "stage": "production"})
        old = (await call(client, "model_get", {"model": f"{name}@v1"}))["model"]
    assert staged["stage"] == "staging"
    assert answers.asked == [f"Promote {name}@v2 to production? The current production version {name}@v1 will be archived."]
    assert promoted["stage"] == "production" and old["stage"] == "archived"


@pytest.mark.parametrize(("mode", "action"), [("auto", "decline"), ("auto", "cancel"), ("legacy", "decline")])
async def test_a_declined_confirmation_refuses_and_moves_nothing(live: Live, mode: str, action: str) -> None:
    name = f"declined-{mode}-{action}"
    async with Client(live.mcp) as plain:
        await register_two(plain, name)
        await call(plain, "model_promote", {"model": f"{name}@v2", "stage": "staging"})
    answers = Answers(action)
    async with Client(live.mcp, elicitation_callback=answers, mode=mode) as client:  # type: ignore[arg-type]
        refused = await client.call_tool("model_promote", {"model": f"{name}@v2", "stage": "production"})
        detail = await call(client, "model_get", {"model": f"{name}@v2"})
    assert len(answers.asked) == 1 and refused.is_error
    assert (f"confirmation: promoting {name}@v2 to production was declined; nothing moved, {name}@v2 stays staging"
            in refused.content[0].text)  # fmt: skip
    assert detail["model"]["stage"] == "staging" and detail["production"] == f"{name}@v1"


async def test_a_client_that_cannot_answer_is_not_asked_and_the_promotion_goes_ahead(live: Live) -> None:
    async with Client(live.mcp) as client:  # no elicitation callback: the capability is not declared
        await register_two(client, "unasked")
        promoted = await call(client, "model_promote", {"model": "unasked@v2", "stage": "production"})
        old = (await call(client, "model_get", {"model": "unasked@v1"}))["model"]
    assert promoted["stage"] == "production" and old["stage"] == "archived"


async def test_archiving_asks_too_and_a_declined_confirmation_keeps_the_version(live: Live) -> None:
    async with Client(live.mcp) as plain:
        await call(plain, "model_register", {"name": "archivable", "path": "models/tiny"})
    declining, accepting = Answers("decline"), Answers("accept")
    async with Client(live.mcp, elicitation_callback=declining) as client:  # type: ignore[arg-type]
        refused = await client.call_tool("model_archive", {"model": "archivable@v1"})
        kept = (await call(client, "model_get", {"model": "archivable@v1"}))["model"]
    async with Client(live.mcp, elicitation_callback=accepting) as client:  # type: ignore[arg-type]
        archived = await call(client, "model_archive", {"model": "archivable@v1"})
    assert refused.is_error and "archiving archivable@v1 was declined" in refused.content[0].text
    assert kept["stage"] == "registered" and archived["stage"] == "archived"
    assert accepting.asked == ["Archive archivable@v1 for good? Archived versions cannot be promoted again."]
