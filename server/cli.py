"""The command line: serve, demo, audit verify, token new, migrate. Logs go to stderr; stdout may carry MCP."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from .. import __version__
from .settings import ConfigError, Settings, load_settings

log = logging.getLogger("mnky_profiles")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def attach_instructions(host: str, port: int, config: Path | None, tokens: bool) -> str:
    url = f"http://{host}:{port}/mcp"
    cfg = ["--config", str(config.resolve())] if config else []
    snippet = {"mcpServers": {"mnky-profiles": {
        "command": str(Path(sys.executable).with_name("mnky-profiles")), "args": ["serve", *cfg]}}}
    header = ' --header "Authorization: Bearer <token>"' if tokens else ""
    return "\n".join([
        f"mnky-profiles {__version__} serving MCP over streamable HTTP at {url}",
        f"  health:     curl http://{host}:{port}/health",
        f"  Inspector:  npx {INSPECTOR}  (transport: Streamable HTTP, URL: {url})",
        f"  CLI check:  npx {INSPECTOR} --cli {url} --transport http --method tools/list{header}",
        "  Chat client (stdio), e.g. in claude_desktop_config.json:",
        "    " + json.dumps(snippet, indent=2).replace("\n", "\n    "),
        "Stop with Ctrl-C.",
    ])


async def _serve(settings: Settings, transport: str, host: str, port: int, config: Path | None,
                 banner: bool = True) -> None:
    from .app import build_server
    from .auth import HashedTokenVerifier
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        if transport == "stdio":
            await build_server(runtime, caller_from="local").run_stdio_async()
            return
        import uvicorn
        from mcp.server.transport_security import TransportSecuritySettings

        tokens = HashedTokenVerifier(settings).configured
        if not tokens and not _is_loopback(host):
            raise ConfigError(
                f"refusing to serve on {host}: no caller has a token, so anyone who can reach it would act as "
                f"the local caller. Bind to 127.0.0.1, or give callers tokens (mnky-profiles token new CALLER).")
        base = f"http://{host}:{port}"
        server = build_server(runtime, caller_from="token" if tokens else "local", base_url=base)
        security = None
        if not _is_loopback(host):
            security = TransportSecuritySettings(allowed_hosts=[f"{host}:{port}", host], allowed_origins=[base])
        app = server.streamable_http_app(streamable_http_path="/mcp", host=host, transport_security=security)
        if banner:
            print(attach_instructions(host, port, config, tokens), file=sys.stderr, flush=True)
        config_ = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        await uvicorn.Server(config_).serve()
    finally:
        await runtime.close()


async def _demo(settings: Settings, users: int, seed: int) -> dict[str, Any]:
    from ..examples.demo import load_demo
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        return await load_demo(runtime.store, users=users, seed=seed, now=runtime.clock.now())
    finally:
        await runtime.close()


async def _verify(settings: Settings) -> int:
    from ..privacy.audit import verify
    from .runtime import open_store

    store = open_store(settings)
    try:
        await store.migrate()
        result = await verify(store, await store.head())
    finally:
        await store.close()
    if result.ok:
        head = f"head {result.head[0]} {result.head[1]}" if result.head else "empty"
        print(f"audit log intact: {result.entries} entries, {head}")
        return 0
    print(f"audit log BROKEN ({result.entries} entries read):", file=sys.stderr)
    for problem in result.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


async def _migrate(settings: Settings) -> str | None:
    from .runtime import open_store

    store = open_store(settings)
    try:
        await store.migrate()
        return await store.schema_revision()
    finally:
        await store.close()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnky-profiles", description="A user-profiling MCP server with "
                                     "privacy built in.")
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help="YAML settings file (default: the packaged defaults)")
        return p

    serve = with_config(sub.add_parser("serve", help="serve MCP over stdio or streamable HTTP"))
    serve.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)

    demo = with_config(sub.add_parser("demo", help="load the demo catalog and population, then serve over HTTP"))
    demo.add_argument("--users", type=int, default=500)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--host", default=DEFAULT_HOST)
    demo.add_argument("--port", type=int, default=DEFAULT_PORT)
    demo.add_argument("--no-serve", action="store_true", help="load the data and exit")

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    with_config(audit_sub.add_parser("verify", help="check the hash chain; exit 1 if anything was altered"))

    token = sub.add_parser("token", help="bearer tokens for HTTP callers")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser("new", help="make a token for a caller and print the digest to configure")
    new.add_argument("caller")

    with_config(sub.add_parser("migrate", help="create or upgrade the database schema"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mcp").setLevel(logging.WARNING)
    try:
        if args.command == "token":
            from .auth import new_token

            token, digest = new_token()
            print(f"token for {args.caller} (give it to the agent; it is not stored):\n  {token}\n"
                  f"add its digest to the caller in your settings file:\n"
                  f"  callers:\n    {args.caller}:\n      token_sha256: [\"{digest}\"]")
            return 0
        settings = load_settings(args.config)
        if args.command == "serve":
            anyio.run(_serve, settings, args.transport, args.host, args.port, args.config)
        elif args.command == "demo":
            summary = anyio.run(_demo, settings, args.users, args.seed)
            print("demo data loaded: " + ", ".join(f"{k} {v}" for k, v in summary.items()), file=sys.stderr)
            if not args.no_serve:
                anyio.run(_serve, settings, "http", args.host, args.port, args.config)
        elif args.command == "audit":
            return anyio.run(_verify, settings)
        elif args.command == "migrate":
            print(f"schema at revision {anyio.run(_migrate, settings)}")
    except ConfigError as exc:
        print(f"mnky-profiles: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
