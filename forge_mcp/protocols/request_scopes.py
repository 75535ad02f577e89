"""Which scope an HTTP request needs, read from the protocol message it carries:
`tools/call` over MCP and a tool data part over A2A need the tool's own scope;
cancelling an A2A task needs 'train'; anything else (listing, reading) needs 'read'."""

from __future__ import annotations

from typing import Any

from forge_mcp.capabilities import CapabilityRegistry
from forge_mcp.protocols.http_guards import ScopeResolver

A2A_SEND_METHODS = frozenset({"SendMessage", "SendStreamingMessage"})


def scope_resolver(registry: CapabilityRegistry) -> ScopeResolver:
    def tool_scope(name: Any) -> str:
        cap = registry.find(name) if isinstance(name, str) else None
        return cap.scope if cap is not None else "read"

    def a2a_message_scope(message: Any) -> str:
        parts = message.get("parts") if isinstance(message, dict) else None
        for part in parts if isinstance(parts, list) else []:
            data = part.get("data") if isinstance(part, dict) else None
            if isinstance(data, dict) and "tool" in data:
                return tool_scope(data["tool"])
        return "read"

    def resolve(method: str, path: str, body: Any) -> str:
        payload = body if isinstance(body, dict) else {}
        params = payload.get("params") if isinstance(payload.get("params"), dict) else {}
        if path.startswith("/mcp"):
            if payload.get("method") == "tools/call":
                return tool_scope(params.get("name"))
            return "read"
        if path.startswith("/a2a/rest"):
            if path.endswith(("/message:send", "/message:stream")):
                return a2a_message_scope(payload.get("message"))
            if path.endswith(":cancel"):
                return "train"
            return "read"
        if path.startswith("/a2a"):
            rpc = payload.get("method")
            if rpc in A2A_SEND_METHODS:
                return a2a_message_scope(params.get("message"))
            if rpc == "CancelTask":
                return "train"
        return "read"

    return resolve
