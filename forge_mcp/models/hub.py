"""Before an export job is queued with push_to_hub: is the push possible at all? A check
that fails here costs the user nothing; one that fails after the export costs the job."""

from __future__ import annotations

import os
import re
import socket
from urllib.parse import urlparse

from forge_mcp.errors import InvalidArguments

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
DEFAULT_ENDPOINT = "https://huggingface.co"
CONNECT_TIMEOUT_S = 3.0


def check_hub_push(repo_id: str) -> None:
    """Raise with the reason and the fix when pushing `repo_id` cannot work from here."""
    if not REPO_ID.match(repo_id):
        raise InvalidArguments("push_to_hub: give a Hub repository id '<user or org>/<name>', e.g. acme/support-bot-gguf")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise InvalidArguments("push_to_hub: HF_HUB_OFFLINE is set on the server, so nothing is pushed; "
                               "export without push_to_hub, and push when online")  # fmt: skip
    if not (os.environ.get("HF_TOKEN") or _token_file_exists()):
        raise InvalidArguments("push_to_hub: the server has no Hugging Face token; set HF_TOKEN in the server's "
                               "environment (a write token), or export without push_to_hub")  # fmt: skip
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise InvalidArguments(f"push_to_hub: the Hugging Face Hub ({host}) is not reachable from this machine "
                               f"({exc.strerror or type(exc).__name__}); export without push_to_hub and copy the "
                               "files, or push when online") from None  # fmt: skip


def _token_file_exists() -> bool:
    home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return os.path.isfile(os.path.join(home, "token"))
