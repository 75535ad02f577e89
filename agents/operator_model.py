"""Which model the operator talks to, and how it is reached: litellm, so any OpenAI-compatible
endpoint works (`openai/<name>` with an api_base, `ollama/llama3`, a hosted provider), and
`forge:<name>@vN`, a version this forge-mcp serves itself, resolved to its running service.

The key is never stored: settings name the environment variable that holds it."""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from forge_mcp.errors import InvalidArguments
from forge_mcp.extras import require_extra

FORGE_PREFIX = "forge:"
# Local endpoints ignore the key, but litellm's OpenAI client refuses to send a request without one.
NO_KEY = "no-key"
MODEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")


@dataclass(frozen=True)
class ServedEndpoint:
    """A running service of a registered version: what forge:<name>@vN resolves to."""

    model: str  # the name requests use
    url: str  # OpenAI base URL, …/v1
    api_key: str


# (the version asked for) -> its running service; from the serving service in the server, over MCP in chat.
EndpointLookup = Callable[[str], Awaitable[ServedEndpoint]]


@dataclass(frozen=True)
class OperatorModel:
    name: str  # as litellm takes it: provider/model
    api_base: str | None = None
    api_key: str | None = None

    def __repr__(self) -> str:  # never print the key
        return f"OperatorModel(name={self.name!r}, api_base={self.api_base!r})"

    def chat_model(self) -> Any:
        """The langchain chat model (imports litellm: seconds, the first time)."""
        require_extra("agent", "the chat operator")
        # Without it, importing litellm tries to download a price table (STACK.md).
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        from langchain_litellm import ChatLiteLLM

        return ChatLiteLLM(model=self.name, api_base=self.api_base, api_key=self.api_key or NO_KEY, temperature=0.0,
                           max_retries=1, request_timeout=300, model_kwargs={"stream_options": {"include_usage": True}})  # fmt: skip


def check_model_name(name: str | None, *, field: str = "operator_model") -> str:
    if not name:
        raise InvalidArguments(
            f"{field}: the operator has no model; set it (e.g. FORGE_OPERATOR_MODEL=openai/<name> with "
            "FORGE_OPERATOR_API_BASE=http://127.0.0.1:8000/v1, or forge:<name>@vN for a version served here, "
            "or `forge-mcp chat --model ... --api-base ...`)"
        )
    if not MODEL_PATTERN.match(name):
        raise InvalidArguments(f"{field}: {name[:80]!r} is not a model name; use provider/model, e.g. openai/gpt-4o-mini")
    return name


def api_key_from(env_name: str | None) -> str | None:
    """The key from the environment variable the settings name; a named variable that is unset is an error."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise InvalidArguments(f"operator_api_key_env: the environment variable {env_name} is not set; export it "
                               "with the endpoint's key, or clear the setting for an endpoint that needs none")  # fmt: skip
    return value


async def resolve_model(name: str | None, api_base: str | None, api_key: str | None,
                        lookup: EndpointLookup) -> OperatorModel:  # fmt: skip
    """`forge:<name>@vN` becomes its running service (URL and key); anything else is taken as given."""
    name = check_model_name(name)
    if not name.startswith(FORGE_PREFIX):
        return OperatorModel(name, api_base, api_key)
    served = await lookup(name.removeprefix(FORGE_PREFIX))
    return OperatorModel(f"openai/{served.model}", served.url, served.api_key)
