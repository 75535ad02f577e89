"""The operator pointed at a model forge-mcp serves itself (issue 15): operator_model
`forge:tiny@v1` resolves to the running llama.cpp service of that version (its URL and key),
and a plain question over A2A is answered by it end to end. No tool use is expected from a
tiny model: this proves the wiring, not the model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from a2a.types import TaskState

from forge_mcp.server_process import ServerProcess
from tests.e2e.test_operator_a2a import ask, statuses, tool

pytestmark = pytest.mark.e2e


async def test_the_operator_talks_to_a_version_this_server_serves(tmp_path: Path, tiny_model: Path) -> None:
    home = tmp_path / "ws"
    shutil.copytree(tiny_model, home / "models" / "tiny")
    with ServerProcess(home, env={"FORGE_OPERATOR_MODEL": "forge:tiny@v1"}) as server:
        unknown = await ask(server.url, "Hello, who are you?")  # no tiny@v1 yet
        await tool(server.url, "model_register", {"name": "tiny", "path": "models/tiny"})
        before = await ask(server.url, "Hello, who are you?")  # nothing serves tiny@v1 yet
        exported = await tool(server.url, "model_export", {"model": "tiny@v1", "format": "gguf", "quantization": "f16"})
        waited = await tool(server.url, "job_wait", {"job_id": exported["job_id"], "timeout_s": 300})
        service = await tool(server.url, "serve_start", {"model": "tiny@v1", "engine": "llama_cpp", "threads": 2})
        events = await ask(server.url, "Hello, who are you?")
        traces = await tool(server.url, "trace_list", {"source": "a2a"})
        await tool(server.url, "serve_stop", {"service": service["job_id"]})

    assert "operator_model forge:tiny@v1: model: no model 'tiny@v1'" in statuses(unknown)[-1].message.parts[0].text
    failed = statuses(before)[-1]
    assert failed.state == TaskState.TASK_STATE_FAILED
    assert "no running service serves tiny@v1" in failed.message.parts[0].text and "serve_start" in failed.message.parts[0].text
    assert waited["job"]["state"] == "SUCCEEDED"
    answered = statuses(events)[-1]
    assert answered.state == TaskState.TASK_STATE_COMPLETED, answered.message.parts[0].text
    answer = answered.message.parts[0].text
    assert answer.strip()  # whatever the tiny model says: it came back through litellm from the service
    [trace] = traces["traces"]
    assert trace["model"] == "openai/tiny@v1" and trace["outcome"] == "answered"
    assert trace["completion_tokens"] and trace["completion_tokens"] > 0
