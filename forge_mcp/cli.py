"""The `forge-mcp` command. Heavy modules are imported inside each command, so
`forge-mcp --help` answers at once."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from forge_mcp import __version__
from forge_mcp.errors import ForgeError

EXIT_USAGE = 2
# client -> transport; the stdio variants launch this very installation of forge-mcp.
CLIENT_CONFIGS = {"claude-desktop": "stdio", "cursor": "stdio", "cursor-http": "http"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="forge-mcp",
        description="The LLM fine-tuning lifecycle behind MCP and A2A. Settings come from "
        "configs/server/default.yaml, FORGE_CONFIG, FORGE_* variables and these flags.",
    )
    parser.add_argument("--version", action="version", version=f"forge-mcp {__version__}")
    parser.add_argument("--home", type=Path, help="workspace folder (FORGE_HOME, default ./forge-workspace)")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (stderr)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    stdio = sub.add_parser("stdio", help="serve MCP over stdio (Claude Desktop, Cursor)")
    stdio.add_argument("--toolsets", help="comma-separated subset of toolsets to expose")

    serve = sub.add_parser("serve", help="serve MCP (/mcp/) and A2A (/a2a) over HTTP")
    serve.add_argument("--host", help="bind address (default 127.0.0.1; others require API keys)")
    serve.add_argument("--port", type=int, help="port (default 8765; 0 picks a free one)")
    serve.add_argument("--auth", choices=["auto", "on", "off"], help="require API keys (auto: off on loopback only)")
    serve.add_argument("--toolsets", help="comma-separated subset of toolsets to expose")
    serve.add_argument("--ready-file", type=Path, help="write the server's URL here once it accepts connections")

    call = sub.add_parser("call", help="run one tool and print its JSON result")
    call.add_argument("name", help="tool name, e.g. forge_overview")
    call.add_argument("--args", default="{}", help="arguments as a JSON object, e.g. '{\"sample_seconds\": 0.5}'")
    call.add_argument("--no-wait", action="store_true", help="for a tool that starts a job: print its handle and exit")

    sub.add_parser("tools", help="list the tools this server offers")

    chat = sub.add_parser("chat", help="talk to the operator in this terminal (an MCP client of forge-mcp)",
                          description="A conversation with the chat operator, an MCP client of forge-mcp: of a "
                          "`forge-mcp stdio` it starts on the workspace, or of a running server (--url, --key). "
                          "Commands: /tools, /model [NAME], /quit.")  # fmt: skip
    chat.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8765 (default: start forge-mcp stdio)")
    chat.add_argument("--key", help="the server's API key for --url (default: the FORGE_API_KEY environment variable)")
    chat.add_argument("--model", dest="operator_model", metavar="MODEL", help="the operator's model: provider/model as litellm names it, "
                      "e.g. openai/<name> with --api-base, or forge:<name>@vN for a version the server serves")  # fmt: skip
    chat.add_argument("--api-base", dest="operator_api_base", metavar="URL", help="the model endpoint's base URL, e.g. http://127.0.0.1:8000/v1")
    chat.add_argument("--api-key-env", dest="operator_api_key_env", metavar="NAME",
                      help="the environment variable that holds the model endpoint's key (the key itself is never a flag)")  # fmt: skip
    chat.add_argument("--thread", metavar="ID", help="resume this conversation (its id is printed at the start of each chat)")
    chat.add_argument("--toolsets", dest="operator_toolsets", metavar="A,B", help="comma-separated toolsets the operator may use")

    client = sub.add_parser("client-config", help="print a ready-to-paste MCP client config with absolute paths")
    client.add_argument("client", choices=sorted(CLIENT_CONFIGS), help="which client the config is for")
    client.add_argument("--url", default="http://127.0.0.1:8765/mcp/", help="server URL for the HTTP variants")
    client.add_argument("--key", default="<your forge API key>", help="API key for the HTTP variants")
    client.add_argument("--import-root", action="append", type=Path, default=[], metavar="DIR",
                        help="a folder outside the workspace that tools may read (datasets, models); repeat for more. "
                        "Written as FORGE_IMPORT_ROOTS into stdio configs; for HTTP it is a setting of the server")  # fmt: skip

    keys = sub.add_parser("keys", help="manage API keys for HTTP clients")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="a name for the key's holder, e.g. cursor-laptop")
    create.add_argument("--scopes", default="read", help="read, train or admin (default read); each includes the ones "
                        "before it: read = look and follow, train = also start, cancel and resume its own jobs, "
                        "admin = everything, every key's jobs included")  # fmt: skip
    keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by name")
    revoke.add_argument("name")

    dev = sub.add_parser("dev", help="developer helpers (need the train extra)")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True, metavar="ACTION")
    tiny = dev_sub.add_parser("tiny-model", help="build a tiny chat model offline (tokenizer, Llama, brief pre-training)")
    tiny.add_argument("path", type=Path, help="folder to write the Hugging Face model into")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.add_argument("--steps", type=int, default=300, help="pre-training steps (default 300)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except ForgeError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    from forge_mcp.settings import load_settings

    overrides: dict[str, Any] = {
        "home": args.home,
        "log_level": args.log_level,
        "toolsets": getattr(args, "toolsets", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "auth": getattr(args, "auth", None),
        "operator_model": getattr(args, "operator_model", None),
        "operator_api_base": getattr(args, "operator_api_base", None),
        "operator_api_key_env": getattr(args, "operator_api_key_env", None),
        "operator_toolsets": getattr(args, "operator_toolsets", None),
    }
    settings = load_settings(**overrides)
    if args.command == "chat":
        return _chat(settings, args)
    logging.basicConfig(
        level=settings.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "stdio":
        return _stdio(settings)
    if args.command == "serve":
        return _serve(settings, args.ready_file)
    if args.command == "call":
        return asyncio.run(_call(settings, args.name, args.args, wait=not args.no_wait))
    if args.command == "tools":
        return _tools(settings)
    if args.command == "dev":
        return _tiny_model(args.path, args.seed, args.steps)
    if args.command == "client-config":
        print(json.dumps(client_config(args.client, settings.home, args.url, args.key, args.import_root), indent=2))
        if args.import_root and CLIENT_CONFIGS[args.client] == "http":
            print(f"note: an HTTP client reads through the server, so import roots are the server's setting: start "
                  f"`forge-mcp serve` with FORGE_IMPORT_ROOTS={_import_roots_value(args.import_root)}", file=sys.stderr)
        return 0
    return asyncio.run(_keys(settings, args))


def _chat(settings: Any, args: argparse.Namespace) -> int:
    import re

    from forge_mcp.chat.session import CHAT_LOG, ChatOptions, run_chat
    from forge_mcp.errors import InvalidArguments

    key = args.key or os.environ.get("FORGE_API_KEY") or None
    if args.key and not args.url:
        raise InvalidArguments("--key goes with --url: the stdio server this chat starts needs no key")
    if args.thread is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", args.thread):
        raise InvalidArguments("--thread: give a thread id as a chat printed it, e.g. chat-1a2b3c4d")
    # The terminal is the conversation's: logs (litellm, the MCP client, the operator) go to a file.
    log_path = settings.home.expanduser().resolve() / CHAT_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=settings.log_level, filename=log_path, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run_chat(settings, ChatOptions(url=args.url, key=key if args.url else None, thread=args.thread)))


def _tiny_model(path: Path, seed: int, steps: int) -> int:
    from forge_mcp.backends.tiny_model import build_tiny_model
    from forge_mcp.extras import require_extra

    require_extra("train", "forge-mcp dev tiny-model")
    info = build_tiny_model(path, seed=seed, steps=steps, progress=lambda s, n, loss: print(f"step {s}/{n} loss {loss:.3f}"))
    print(json.dumps({"path": str(path.resolve()), **info}, indent=2))
    return 0


def _stdio(settings: Any) -> int:
    import anyio

    from forge_mcp.app import ForgeApp

    app = ForgeApp(settings)
    server = app.mcp_server(over_http=False)

    async def run() -> None:
        async with app.running():
            await server.run_stdio_async()

    anyio.run(run)
    return 0


def _serve(settings: Any, ready_file: Path | None) -> int:
    from forge_mcp.protocols.http_server import serve

    serve(settings, ready_file)
    return 0


async def _call(settings: Any, name: str, raw_args: str, *, wait: bool) -> int:
    from forge_mcp.app import ForgeApp
    from forge_mcp.errors import InvalidArguments
    from forge_mcp.jobs.models import JobHandle
    from forge_mcp.protocols.json_depth import exceeds_depth, too_deep_message
    from forge_mcp.security.principal import Principal

    if exceeds_depth(raw_args):
        raise InvalidArguments(f"--args: {too_deep_message()}")
    try:
        arguments = json.loads(raw_args)
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"--args is not valid JSON ({exc.msg} at column {exc.colno})") from None
    app = ForgeApp(settings)

    async def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        share = f"{done:g}/{total:g}" if total else f"{done:g}"
        print(f"[{share}] {message or ''}", file=sys.stderr, flush=True)

    async with app.running():
        result = await app.runner.run(name, arguments, Principal.local("cli"), surface="cli", progress=progress)
        if wait and isinstance(result, JobHandle):
            print(f"started {result.job_id}; waiting (Ctrl-C stops waiting, not the job)", file=sys.stderr)
            result = await app.runner.run(
                "job_wait", {"job_id": result.job_id, "timeout_s": 600}, Principal.local("cli"), surface="cli",
                progress=progress,
            )  # fmt: skip
    print(result.model_dump_json(indent=2))
    return 0


def client_config(client: str, home: Path, url: str, key: str, import_roots: Sequence[Path] = ()) -> dict[str, Any]:
    """The `mcpServers` block Claude Desktop (claude_desktop_config.json) and Cursor
    (~/.cursor/mcp.json) read; stdio variants use absolute paths, since those apps start
    the server from their own working directory, and carry the import roots."""
    value = _import_roots_value(import_roots)  # checked for every variant: a typo is caught either way
    if CLIENT_CONFIGS[client] == "http":
        entry: dict[str, Any] = {"url": url, "headers": {"Authorization": f"Bearer {key}"}}
    else:
        executable = Path(sys.executable).with_name("forge-mcp")
        command = [str(executable)] if executable.exists() else [sys.executable, "-m", "forge_mcp"]
        entry = {
            "command": command[0],
            "args": [*command[1:], "stdio"],
            "env": {"FORGE_HOME": str(home.expanduser().resolve())},
        }
        if value:
            entry["env"]["FORGE_IMPORT_ROOTS"] = value
    return {"mcpServers": {"forge": entry}}


def _import_roots_value(import_roots: Sequence[Path]) -> str:
    """FORGE_IMPORT_ROOTS for these folders: absolute, existing, joined like PATH."""
    from forge_mcp.errors import InvalidArguments

    resolved = []
    for folder in import_roots:
        path = folder.expanduser().resolve()
        if not path.is_dir():
            raise InvalidArguments(f"--import-root: {folder} is not a folder; give an existing folder to read from")
        if os.pathsep in str(path):
            raise InvalidArguments(f"--import-root: {folder} contains {os.pathsep!r}, which separates the folders; "
                                   "rename it")
        resolved.append(str(path))
    return os.pathsep.join(dict.fromkeys(resolved))


def _tools(settings: Any) -> int:
    from forge_mcp.app import ForgeApp

    app = ForgeApp(settings)
    for cap in app.registry:
        kind = "job" if cap.long_running else "now"
        print(f"{cap.name:<22} {cap.toolset:<10} scope={cap.scope:<6} {kind:<4} {cap.title}")
    return 0


async def _keys(settings: Any, args: argparse.Namespace) -> int:
    from forge_mcp.app import ForgeApp

    app = ForgeApp(settings)
    async with app.running(engine=False):
        if args.keys_command == "create":
            key = await app.api_keys.create(args.name, args.scopes)
            print(key)
            print(
                f"created API key {args.name!r}. It is shown only this once: store it now. "
                "Clients send it as 'Authorization: Bearer <key>'.",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            for info in await app.api_keys.list():
                state = "active" if info.active else "revoked"
                used = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.last_used_at)) if info.last_used_at else "never"
                print(f"{info.name:<24} {info.prefix}…  scopes={','.join(info.scopes):<16} {state:<8} last used {used}")
        else:
            await app.api_keys.revoke(args.name)
            print(f"revoked API key {args.name!r}", file=sys.stderr)
    return 0
