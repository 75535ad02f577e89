"""The load benchmark's baselines: a bare `MCPServer` with one trivial tool, and a bare a2a-sdk
app whose executor answers at once, with the same sqlite task store as forge. Both run with
uvicorn on a loopback socket made the way forge makes its own (IPPROTO_TCP, so accepted
connections get TCP_NODELAY), and write their URL to --ready-file once they listen.

    python -m benchmarks.load_bare mcp --ready-file /tmp/url
    python -m benchmarks.load_bare a2a --ready-file /tmp/url --db /tmp/bare.db
"""

from __future__ import annotations

import argparse
import asyncio
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn

LOOPBACK = "127.0.0.1"


def bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    return sock


def mcp_app() -> Any:
    from mcp.server import MCPServer
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    server = MCPServer(name="bare", log_level="WARNING")

    @server.tool()
    async def job_status(job_id: str) -> dict[str, Any]:
        """The state of one job."""
        return {"id": job_id, "state": "SUCCEEDED"}

    asgi = server.streamable_http_app(streamable_http_path="/", host=LOOPBACK)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        async with server.session_manager.run():
            yield

    async def health(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/health", health), Mount("/mcp", app=asgi)], lifespan=lifespan)


def a2a_app(url: str, db: Path) -> Any:
    from a2a.helpers import new_data_part, new_task_from_user_message
    from a2a.server.agent_execution import AgentExecutor, RequestContext
    from a2a.server.events import EventQueue
    from a2a.server.request_handlers import DefaultRequestHandler
    from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
    from a2a.server.tasks import DatabaseTaskStore, TaskUpdater
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
    from sqlalchemy.ext.asyncio import create_async_engine
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    class Echo(AgentExecutor):
        async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
            assert context.message is not None
            task = context.current_task or new_task_from_user_message(context.message)
            if context.current_task is None:
                await event_queue.enqueue_event(task)
            updater = TaskUpdater(event_queue, task.id, task.context_id)
            await updater.start_work()
            await updater.add_artifact([new_data_part({"state": "SUCCEEDED"})], name="result", last_chunk=True)
            await updater.complete()

        async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
            raise NotImplementedError

    card = AgentCard(
        name="bare", description="bare a2a-sdk app", version="1",
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", url=f"{url}/a2a")],
        capabilities=AgentCapabilities(streaming=True), default_input_modes=["application/json"],
        default_output_modes=["application/json"],
        skills=[AgentSkill(id="job_status", name="job_status", description="state of a job", tags=["jobs"])],
    )  # fmt: skip
    import sqlite3

    with sqlite3.connect(db) as conn:  # the same journal as forge's store (WAL), so the same sqlite store
        conn.execute("PRAGMA journal_mode = WAL")
    engine = create_async_engine(f"sqlite+aiosqlite:///{db}", connect_args={"timeout": 10})
    store = DatabaseTaskStore(engine)
    handler = DefaultRequestHandler(agent_executor=Echo(), task_store=store, agent_card=card)

    @asynccontextmanager
    async def lifespan(_: Any) -> Any:
        await store.initialize()
        yield
        await engine.dispose()

    async def health(_: Any) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    routes = [Route("/health", health), *create_agent_card_routes(card), *create_jsonrpc_routes(handler, rpc_url="/a2a")]
    return Starlette(routes=routes, lifespan=lifespan)


async def run(app: Any, sock: socket.socket, url: str, ready_file: Path) -> None:
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.02)
    ready_file.write_text(url)
    await serving


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["mcp", "a2a"])
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--db", type=Path, default=None)
    args = parser.parse_args()
    sock = bind()
    url = f"http://{LOOPBACK}:{sock.getsockname()[1]}"
    if args.kind == "mcp":
        app = mcp_app()
    else:
        if args.db is None:
            parser.error("a2a needs --db")
        app = a2a_app(url, args.db)
    asyncio.run(run(app, sock, url, args.ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
