"""A2A push notifications: job status pushed to an allowlisted webhook on loopback;
webhooks elsewhere refused; push off (and said so on the card) without an allowlist."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from a2a.client import ClientConfig, create_client
from a2a.helpers import new_data_part, new_message
from a2a.types import Role, SendMessageRequest, TaskPushNotificationConfig
from a2a.utils.errors import InvalidParamsError

from forge_mcp.server_process import ServerProcess

pytestmark = pytest.mark.e2e


class Receiver:
    """A webhook on loopback that records what it is sent."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.tokens: list[str | None] = []
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                with receiver.arrived:
                    receiver.bodies.append(body)
                    receiver.tokens.append(self.headers.get("X-A2A-Notification-Token"))
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, predicate, timeout_s: float = 60.0) -> bool:  # noqa: ANN001
        with self.arrived:
            return self.arrived.wait_for(lambda: any(predicate(b) for b in self.bodies), timeout_s)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.server.shutdown()


def sleep_message():  # noqa: ANN201
    """A short test_sleep job's task (the test kinds' tool: the servers here start with FORGE_TEST_JOB_KINDS=1)."""
    start = {"kind": "test_sleep", "arguments": {"seconds": 0.6}}
    return new_message([new_data_part({"tool": "test_job_start", "arguments": start})], role=Role.ROLE_USER)


def completed(body: dict) -> bool:
    return body.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_COMPLETED"


async def test_job_updates_are_pushed_to_an_allowlisted_webhook(tmp_path: Path, receiver: Receiver) -> None:
    with ServerProcess(tmp_path / "ws", env={"FORGE_PUSH_ALLOWED_HOSTS": "127.0.0.1", "FORGE_TEST_JOB_KINDS": "1"}) as live:
        card = httpx.get(live.url + "/.well-known/agent-card.json").json()
        assert card["capabilities"]["pushNotifications"] is True
        push = TaskPushNotificationConfig(url=receiver.url, token="secret-token")
        client = await create_client(
            live.url, client_config=ClientConfig(streaming=False, polling=True, push_notification_config=push)
        )
        try:
            [event] = [e async for e in client.send_message(SendMessageRequest(message=sleep_message()))]
            assert receiver.wait_for(completed), receiver.bodies
        finally:
            await client.close()
    working = [b for b in receiver.bodies if b.get("statusUpdate", {}).get("status", {}).get("state") == "TASK_STATE_WORKING"]
    assert any("slept" in json.dumps(b) for b in working)  # test_sleep's progress messages
    assert all(b.get("statusUpdate", b.get("task", b.get("artifactUpdate", {}))).get("taskId", event.task.id) == event.task.id for b in receiver.bodies)
    assert set(receiver.tokens) == {"secret-token"}


async def test_webhooks_outside_the_allowlist_are_refused(tmp_path: Path, receiver: Receiver) -> None:
    with ServerProcess(tmp_path / "ws", env={"FORGE_PUSH_ALLOWED_HOSTS": "hooks.example.lan", "FORGE_TEST_JOB_KINDS": "1"}) as live:
        push = TaskPushNotificationConfig(url=receiver.url)
        client = await create_client(live.url, client_config=ClientConfig(streaming=False, push_notification_config=push))
        try:
            with pytest.raises(InvalidParamsError, match="Invalid push notification URL"):
                [e async for e in client.send_message(SendMessageRequest(message=sleep_message()))]
        finally:
            await client.close()
    assert receiver.bodies == []


def test_push_is_off_without_an_allowlist(server: ServerProcess) -> None:
    card = httpx.get(server.url + "/.well-known/agent-card.json").json()
    assert card["capabilities"].get("pushNotifications", False) is False
