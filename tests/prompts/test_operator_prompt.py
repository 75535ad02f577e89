"""The operator behind A2A speaks with the latest operator-system version: its model gets that
text as the system message, the packaged one until someone saves another; a version that
renders to nothing (a Jinja comment) sends none, for a model trained without one."""

from __future__ import annotations

from pathlib import Path

from forge_mcp.agents.a2a_operator import OperatorDelegate
from forge_mcp.agents.a2a_tasks import A2ATaskLedger
from forge_mcp.agents.operator import SYSTEM_PROMPT
from forge_mcp.app import ForgeApp
from forge_mcp.backends.scripted_llm import ScriptedLLM
from forge_mcp.prompts.defaults import OPERATOR_SYSTEM
from forge_mcp.security.principal import Principal
from forge_mcp.settings import load_settings


async def test_the_a2a_operator_uses_the_latest_operator_system_prompt(tmp_path: Path) -> None:
    with ScriptedLLM({}, default="Hello.") as llm:
        app = ForgeApp(load_settings(home=tmp_path / "ws", log_level="WARNING", operator_model="openai/scripted",
                                     operator_api_base=llm.url))  # fmt: skip
        async with app.running(engine=False):
            delegate = OperatorDelegate(app.runner, app.services, A2ATaskLedger(app.store, app.jobs))
            try:
                packaged = await delegate._operator(Principal.local())
                [_ async for _ in packaged.send("t1", "Hi")]
                await app.services.prompts.save(
                    Principal.local(), OPERATOR_SYSTEM, "You are terse. Say hello.", "Terse"
                )
                saved = await delegate._operator(Principal.local())
                [_ async for _ in saved.send("t2", "Hi")]
                await app.services.prompts.save(Principal.local(), OPERATOR_SYSTEM, "{# none #}", "None for a tiny model")
                blank = await delegate._operator(Principal.local())
                [_ async for _ in blank.send("t3", "Hi")]
                trace = (await app.services.traces.list(Principal.local(), limit=1)).traces[0]
            finally:
                await delegate.close()
        systems = [body["messages"][0] for body in llm.completions()]
    assert systems == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "system", "content": "You are terse. Say hello."},
        {"role": "user", "content": "Hi"},
    ]
    assert trace.preview == "Hi" and trace.message_count == 2  # the user's message and the answer, no system
