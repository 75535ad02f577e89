"""The load benchmark's client process: N concurrent clients, each making M calls one after
another, through the official clients (mcp `Client`, a2a-sdk `create_client`). It prints
`ready` once imported, waits for a line on stdin (so the parent can read the server's CPU
time just before), runs, and prints one JSON line: per-call latencies, errors, wall time,
and each MCP client's session set-up time.

An MCP client's set-up (initialize, then `tools/list`) is timed apart from its calls. The
SDK's `call_tool` lists the tools before the first call to a tool it has not seen, so
without this the first call of every client carried a `tools/list` round trip: at 40 calls
per client those 50 calls are 2.5 % of the samples, and the p99 measured the size of the
tool list (29 tools against the bare server's one) rather than a call. For the same reason
the calls start together once every client has set up (StartLine): while the others were
still setting up, each client's first call waited behind their `tools/list` answers (forge
p99 250-280 ms, with the first calls left out 153-155 ms; the bare server's 135 ms either
way). Throughput is calls over the time from that start to the last answer.

    python -m benchmarks.load_client --url http://127.0.0.1:PORT --protocol mcp --era 2025 --clients 50 --calls 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from typing import Any

ERAS = {"2025": "legacy", "2026": "auto"}  # mode="legacy" forces 2025-11-25; auto discovers 2026-07-28


class StartLine:
    """Every client sets up first (or fails to); the calls start together once all have."""

    def __init__(self, clients: int) -> None:
        self._waiting = clients
        self._go = asyncio.Event()
        self.at = 0.0

    async def ready(self) -> None:
        self._waiting -= 1
        if self._waiting == 0:
            self.at = time.perf_counter()
            self._go.set()
        await self._go.wait()


async def mcp_client(
    url: str, era: str, calls: int, job_id: str, line: StartLine,
    latencies: list[float], errors: Counter[str], setups: list[float],
) -> None:  # fmt: skip
    from mcp import Client

    made, lined_up = 0, False
    try:
        set_up = time.perf_counter()
        async with Client(f"{url}/mcp/", mode=ERAS[era]) as client:  # type: ignore[arg-type]
            await client.list_tools()  # what call_tool would do first; timed as set-up, not as a call
            setups.append(time.perf_counter() - set_up)
            lined_up = True
            await line.ready()
            for _ in range(calls):
                made += 1
                started = time.perf_counter()
                try:
                    result = await client.call_tool("job_status", {"job_id": job_id})
                except Exception as exc:  # noqa: BLE001 - an error is a data point here
                    errors[_describe(exc)] += 1
                    continue
                if result.is_error:
                    errors[f"tool error: {str(result.content)[:120]}"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - session set-up failed: every call of this client failed
        errors[f"session: {_describe(exc)}"] += calls - made  # set-up failed: the calls not made failed too
    finally:
        if not lined_up:
            await line.ready()  # a client whose set-up failed must not hold the others back


async def a2a_client(url: str, calls: int, job_id: str, line: StartLine, latencies: list[float], errors: Counter[str]) -> None:
    import httpx
    from a2a.client import ClientConfig, create_client
    from a2a.helpers import new_data_part, new_message
    from a2a.types import Role, SendMessageRequest, TaskState

    http = httpx.AsyncClient(timeout=60)
    made, lined_up = 0, False
    try:
        client = await create_client(url, client_config=ClientConfig(streaming=False, httpx_client=http))
        lined_up = True
        await line.ready()
        try:
            for _ in range(calls):
                made += 1
                message = new_message(
                    [new_data_part({"tool": "job_status", "arguments": {"job_id": job_id}})], role=Role.ROLE_USER
                )
                started = time.perf_counter()
                try:
                    events = [e async for e in client.send_message(SendMessageRequest(message=message))]
                except Exception as exc:  # noqa: BLE001
                    errors[_describe(exc)] += 1
                    continue
                state = events[-1].task.status.state if events and events[-1].HasField("task") else None
                if state != TaskState.TASK_STATE_COMPLETED:
                    errors[f"task ended {state}"] += 1
                    continue
                latencies.append(time.perf_counter() - started)
        finally:
            await client.close()
    except Exception as exc:  # noqa: BLE001
        errors[f"client: {_describe(exc)}"] += calls - made
    finally:
        if not lined_up:
            await line.ready()
        await http.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    setups: list[float] = []
    errors: Counter[str] = Counter()
    line = StartLine(args.clients)
    if args.protocol == "mcp":
        clients = [mcp_client(args.url, args.era, args.calls, args.job_id, line, latencies, errors, setups)
                   for _ in range(args.clients)]  # fmt: skip
    else:
        clients = [a2a_client(args.url, args.calls, args.job_id, line, latencies, errors) for _ in range(args.clients)]
    await asyncio.wait_for(asyncio.gather(*clients), timeout=args.timeout_s)
    wall = time.perf_counter() - line.at
    return {"latencies": latencies, "errors": dict(errors), "wall_s": wall, "setups": setups}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--protocol", choices=["mcp", "a2a"], required=True)
    parser.add_argument("--era", choices=sorted(ERAS), default="2026")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--job-id", default="job_x")
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args()
    import a2a.client  # noqa: F401
    import mcp  # noqa: F401 - import before 'ready', so import time is not charged to the run

    print("ready", flush=True)
    sys.stdin.readline()
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
