"""The A2A agent card: cards/agent.yaml, plus one skill per capability and the
interfaces and security schemes that follow from the settings."""

from __future__ import annotations

import json

import yaml
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from a2a.utils.constants import TransportProtocol

from forge_mcp import __version__
from forge_mcp.capabilities import CapabilityRegistry
from forge_mcp.package_data import card_file
from forge_mcp.settings import Settings

A2A_PROTOCOL_VERSION = "1.0"
BEARER_SCHEME = "forge_api_key"


def build_agent_card(registry: CapabilityRegistry, settings: Settings) -> AgentCard:
    data = yaml.safe_load(card_file("agent.yaml").read_text())
    base = settings.base_url
    card = AgentCard(
        name=data["name"],
        description=" ".join(data["description"].split()),
        version=__version__,
        provider=AgentProvider(**data["provider"]),
        documentation_url=data["documentation_url"],
        default_input_modes=data["default_input_modes"],
        default_output_modes=data["default_output_modes"],
        capabilities=AgentCapabilities(
            **data["capabilities"], push_notifications=bool(settings.push_allowed_hosts)
        ),
        supported_interfaces=[
            AgentInterface(
                url=f"{base}/a2a", protocol_binding=TransportProtocol.JSONRPC, protocol_version=A2A_PROTOCOL_VERSION
            ),
            AgentInterface(
                url=f"{base}/a2a/rest",
                protocol_binding=TransportProtocol.HTTP_JSON,
                protocol_version=A2A_PROTOCOL_VERSION,
            ),
        ],
        skills=[
            AgentSkill(
                id=cap.name,
                name=cap.title,
                description=cap.description,
                tags=[cap.toolset, f"scope:{cap.scope}", "long-running" if cap.long_running else "immediate"],
                examples=[json.dumps({"tool": cap.name, "arguments": {}})],
                input_modes=["application/json"],
                output_modes=["application/json"],
            )
            for cap in registry
        ],
    )
    if settings.operator_model:
        skill = data["operator_skill"]
        card.skills.insert(0, AgentSkill(id=skill["id"], name=skill["name"], description=" ".join(skill["description"].split()),
                                         tags=skill["tags"], examples=skill["examples"], input_modes=["text/plain"],
                                         output_modes=["text/plain", "application/json"]))  # fmt: skip
    if settings.auth_enabled:
        card.security_schemes[BEARER_SCHEME].CopyFrom(
            SecurityScheme(
                http_auth_security_scheme=HTTPAuthSecurityScheme(
                    scheme="Bearer",
                    description="A forge-mcp API key (forge-mcp keys create --name N --scopes read,train)",
                )
            )
        )
        card.security_requirements.append(SecurityRequirement(schemes={BEARER_SCHEME: StringList(list=[])}))
    return card
