"""A judge's settings as a caller gives them (judge_url, judge_model, judge_api_key_env: the
same three arguments on model_evaluate, model_compare and trace_judge), checked before any job
is queued: the URL against private ranges, the key only as the name of a variable that is set,
and never sent in the clear off loopback."""

from __future__ import annotations

import asyncio
import os
import urllib.parse

from forge_mcp.errors import InvalidArguments
from forge_mcp.models.judge import JudgeConfig
from forge_mcp.security.urls import check_outbound_url
from forge_mcp.settings import is_loopback


async def checked_judge(url: str | None, model: str | None, key_env: str | None) -> JudgeConfig | None:
    """The judge's settings for a job (never the key itself), or None when no judge is asked for."""
    if url is None:
        if model is not None or key_env is not None:
            raise InvalidArguments("judge_url: give the judge's OpenAI-compatible endpoint along with judge_model")
        return None
    if model is None:
        raise InvalidArguments("judge_model: name the model the judge endpoint serves (GET <judge_url>/models lists them)")
    checked = await asyncio.to_thread(check_outbound_url, url, "judge_url")
    if key_env is not None:
        if not os.environ.get(key_env):
            raise InvalidArguments(f"judge_api_key_env: the environment variable {key_env} is not set on the server")
        parts = urllib.parse.urlsplit(checked)
        if parts.scheme == "http" and not is_loopback(parts.hostname or ""):
            raise InvalidArguments("judge_api_key_env: the key would cross the network unencrypted; use an https judge_url "
                                   "(plain http is fine on loopback)")  # fmt: skip
    return JudgeConfig(url=checked, model=model, api_key_env=key_env)
