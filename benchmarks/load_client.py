"""The load benchmark's client process: N concurrent clients, each making M calls one after
another, through the official clients (mcp `Client`, a2a-sdk `create_client`). It prints
`ready` once imported, waits for a line on stdin (so the parent can read the server's CPU
time just before), runs, and prints one JSON line: per-call latencies, errors, wall time,
and each MCP client's session set-up time.

An MCP client's set-up (initialize, then `tools/list`) is timed apart from its calls. The
SDK's `call_tool` lists the tools before the first call to a tool it has not seen, so
without this the first call of every client carried a `tools/list` round trip: at 40 calls
per client those 50 calls are 2.5 % of the samples, and the p99 measured the size of the
tool list (29 tools against the bare server's one) rather than a call.

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


async def mcp_client(
    url: str, era: str, calls: int, job_id: str, latencies: list[float], errors: Counter[str], setups: list[float]
) -> None:
    from mcp import Client

    made = 0
    try:
        set_up = time.perf_counter()
        async with Client(f"{url}/mcp/", mode=ERAS[era]) as client:  # type: ignore[arg-type]
            await client.list_tools()  # what call_tool would do first; timed as set-up, not as a call
            setups.append(time.perf_counter() - set_up)
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


async def a2a_client(url: str, calls: int, job_id: str, latencies: list[float], errors: Counter[str]) -> None:
    import httpx
    from a2a.client import ClientConfig, create_client
    from a2a.helpers import new_data_part, new_message
    from a2a.types import Role, SendMessageRequest, TaskState

    http = httpx.AsyncClient(timeout=60)
    made = 0
    try:
        client = await create_client(url, client_config=ClientConfig(streaming=False, httpx_client=http))
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
        await http.aclose()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:120]}"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    latencies: list[float] = []
    setups: list[float] = []
    errors: Counter[str] = Counter()
    if args.protocol == "mcp":
        clients = [mcp_client(args.url, args.era, args.calls, args.job_id, latencies, errors, setups)
                   for _ in range(args.clients)]  # fmt: skip
    else:
        clients = [a2a_client(args.url, args.calls, args.job_id, latencies, errors) for _ in range(args.clients)]
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*clients), timeout=args.timeout_s)
    wall = time.perf_counter() - started
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
