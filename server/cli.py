"""The command line: serve, demo, audit verify and export, requests, token new, migrate, learn, reindex,
retention, export, erase. Logs go to stderr; stdout may carry MCP."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import re
import signal
import socket
import sys
from collections.abc import Coroutine, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
from pydantic_settings import SettingsError

from .. import __version__
from ..domain.errors import DomainError, StoreUnavailable
from ..domain.requests import STATUSES
from .settings import ENV_PREFIX, ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from .gating import CallerSource

log = logging.getLogger("mnky_profiles")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MCP_PATH = "/mcp"
INSPECTOR = "@modelcontextprotocol/inspector@2.12.0"
# The hosts for which the SDK turns on its own Host/Origin (DNS-rebinding) checks.
_SDK_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_wildcard(host: str) -> bool:
    if host == "":
        return True
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _url_host(host: str) -> str:
    """The host as it appears in a URL: a wildcard bind is reached on loopback; IPv6 goes in brackets."""
    if _is_wildcard(host):
        return "[::1]" if ":" in host else "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port (0-65535; 0 picks a free one)")
    return port


def _self_command() -> list[str]:
    """How a chat client starts this program: the console script next to this interpreter, if installed."""
    script = Path(sys.executable).with_name("mnky-profiles")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "mnky_profiles.server.cli"]


def attach_instructions(host: str, port: int, config: Path | None, tokens: bool,
                        data_dir: Path | None = None, local_caller: str | None = None) -> str:
    """The banner of ``serve --transport http`` and ``demo``: where MCP is and how to attach clients to it.

    Chat clients get two ready snippets: one that attaches to this server over HTTP while it runs, and one that
    starts a stdio server of their own on the same settings and data (one process at a time holds the data).
    """
    base = f"http://{_url_host(host)}:{port}"
    url = base + MCP_PATH
    header = ' --header "Authorization: Bearer <token>"' if tokens else ""
    remote: dict[str, Any] = {"type": "http", "url": url}
    if tokens:
        remote["headers"] = {"Authorization": "Bearer <token>"}
    command, *args = _self_command()
    stdio: dict[str, Any] = {"command": command,
                             "args": [*args, "serve", *(["--config", str(config.resolve())] if config else [])]}
    if data_dir is not None:
        # A chat client starts the server in a directory of its own: pin the data to this server's.
        stdio["env"] = {"MNKY_DATA_DIR": str(data_dir.resolve())}
    if tokens:
        who = 'each request needs "Authorization: Bearer <token>" (make one: mnky-profiles token new CALLER)'
    else:
        who = f"no tokens configured, every request acts as {local_caller or 'the local caller'} (loopback only)"

    def block(snippet: dict[str, Any]) -> str:
        return "    " + json.dumps({"mcpServers": {"mnky-profiles": snippet}}, indent=2).replace("\n", "\n    ")

    lines = [
        f"mnky-profiles {__version__} serving MCP over streamable HTTP at {url}",
        f"  health:     curl {base}/health",
        f"  callers:    {who}",
    ]
    if _is_wildcard(host):
        lines.append(f"  listening on every interface ({host or 'all'}): from elsewhere use this machine's address")
    lines += [
        f"  Inspector:  npx -y {INSPECTOR} --transport http --server-url {url}{header}",
        f"  CLI check:  npx -y {INSPECTOR} --cli {url} --transport http --method tools/list{header}",
        "  Chat client over HTTP, attached to this server (e.g. in .mcp.json):",
        block(remote),
    ]
    if local_caller is not None or not tokens:
        lines += ["  Chat client over stdio, starting its own server on this data once this one is stopped",
                  "  (e.g. in claude_desktop_config.json):", block(stdio)]
    else:
        lines.append("  Chat client over stdio: set local_caller in the settings first (stdio has no tokens)")
    lines.append("Stop with Ctrl-C.")
    return "\n".join(lines)


def _caller_source(settings: Settings, transport: str, host: str) -> CallerSource:
    """Where callers come from, checked before anything starts: tokens over HTTP, else the local caller.

    HTTP with no tokens serves the local caller on loopback only: anyone who can reach a wider bind would act as it.
    """
    from .auth import HashedTokenVerifier

    tokens = transport == "http" and HashedTokenVerifier(settings).configured
    if transport == "http" and not tokens and not _is_loopback(host):
        raise ConfigError(
            f"refusing to serve on {host or 'every interface'}: no caller has a token, so anyone who can reach it "
            f"would act as the local caller. Bind to 127.0.0.1, or give callers tokens "
            f"(mnky-profiles token new CALLER).")
    if not tokens and settings.local_caller is None:
        where = "over stdio" if transport == "stdio" else "over HTTP without tokens"
        raise ConfigError(f"local_caller is not set, so nobody could call the server {where}. Set local_caller to "
                          f"one of the callers ({', '.join(settings.callers) or 'none configured'})"
                          + (", or give callers tokens." if transport == "http" else "."))
    return "token" if tokens else "local"


def _transport_security(host: str, port: int) -> Any:
    """Host/Origin checks against DNS rebinding for the bind address (None: the SDK's own loopback checks)."""
    from mcp.server.transport_security import TransportSecuritySettings

    if host in _SDK_LOOPBACK:
        return None
    if _is_wildcard(host):
        # The names clients use for this machine are unknown here. Serving every interface needs bearer tokens
        # (see _caller_source), which a rebinding page does not have, so the Host check adds nothing there.
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    name = _url_host(host)
    hosts = [f"{name}:{port}", name]
    origins = [f"http://{name}:{port}"]
    if _is_loopback(host):
        hosts += [f"{h}:*" for h in ("127.0.0.1", "localhost", "[::1]")]
        origins += [f"http://{h}:*" for h in ("127.0.0.1", "localhost", "[::1]")]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def _listen(host: str, port: int) -> socket.socket:
    """Bind before anything else starts, so a busy port is a clear error and port 0 gets a real number."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}. Choose another --port or --host.") from None


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """SIGTERM ends the HTTP server like Ctrl-C does, closing the stores, then exits with status 0.

    uvicorn shuts down gracefully on SIGTERM and then re-raises it; this handler turns that into an exit that
    unwinds through the stores' cleanup instead of the process dying on the spot.
    """
    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _in_background(work: Coroutine[Any, Any, None]) -> Iterator[None]:
    """Run ``work`` beside the server and cancel it when the server stops (a signal's exit stays plain)."""
    task = asyncio.get_running_loop().create_task(work)
    try:
        yield
    finally:
        task.cancel()


async def _serve(settings: Settings, transport: str, host: str, port: int, config: Path | None,
                 banner: bool = True) -> None:
    from .app import build_server
    from .runtime import bootstrap, settle

    caller_from = _caller_source(settings, transport, host)
    if transport == "stdio":
        runtime = await bootstrap(settings)
        settle()
        try:
            with _in_background(runtime.usecases.learning.maintain(settings.learning.refit_minutes)), \
                    _in_background(runtime.usecases.retention.maintain()):
                await build_server(runtime, caller_from=caller_from).run_stdio_async()
        finally:
            await runtime.close()
        return

    import uvicorn

    sock = _listen(host, port)
    try:
        port = sock.getsockname()[1]
        runtime = await bootstrap(settings)
        settle()
        try:
            base = f"http://{_url_host(host)}:{port}"
            server = build_server(runtime, caller_from=caller_from, base_url=base)
            app = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host,
                                             transport_security=_transport_security(host, port))
            if banner:
                print(attach_instructions(host, port, config, caller_from == "token", settings.data_dir,
                                          settings.local_caller), file=sys.stderr, flush=True)
            config_ = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
            with _stop_on_sigterm(), _in_background(runtime.usecases.learning.maintain(
                    settings.learning.refit_minutes)), _in_background(runtime.usecases.retention.maintain()):
                await uvicorn.Server(config_).serve(sockets=[sock])
        finally:
            await runtime.close()
    finally:
        sock.close()


async def _demo(settings: Settings, users: int, seed: int) -> dict[str, Any]:
    from ..examples.demo import load_demo
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        summary = await load_demo(runtime.store, users=users, seed=seed, now=runtime.clock.now())
        usecases = runtime.usecases
        if summary.get("users") or usecases.model.current is None:
            # The loader writes rows directly; learn from them as if they had arrived one by one.
            summary["learned_users"] = await usecases.learning.relearn()
            summary["model_users"] = (await usecases.model.fit()).users
        return summary
    finally:
        await runtime.close()


async def _learn(settings: Settings, everything: bool) -> str:
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        runs = runtime.usecases.learning
        done = (f"relearned {await runs.relearn()} users from their events" if everything
                else f"applied {await runs.learn()} queued events")
        model = await runtime.usecases.model.fit()
        return f"{done}; item model fitted on {model.users} consenting users"
    finally:
        await runtime.close()


async def _reindex(settings: Settings) -> int:
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        return await runtime.usecases.upkeep.rebuild()
    finally:
        await runtime.close()


def _progress_line(done: int, total: int) -> None:
    """A progress line on stderr, rewritten in place (stdout may carry MCP or a report)."""
    end = "\n" if done >= total else ""
    print(f"\rretention: {done}/{total} users recomputed", end=end, file=sys.stderr, flush=True)


async def _retention(settings: Settings, dry_run: bool) -> str:
    from .runtime import bootstrap

    runtime = await bootstrap(settings)
    try:
        retention = runtime.usecases.retention
        report = await retention.plan() if dry_run else await retention.purge(progress=_progress_line)
        return "\n".join(report.lines())
    finally:
        await runtime.close()


async def _verify(settings: Settings) -> int:
    from ..privacy.audit import verify
    from .runtime import audit_keys, open_store

    keys = audit_keys(settings, create=False)  # the same key the server uses; never a new one
    store = open_store(settings)
    try:
        await store.migrate()
        result = await verify(store, await store.head(), keys)
    finally:
        await store.close()
    if result.ok:
        head = f"head {result.head[0]} {result.head[1]}" if result.head else "empty"
        keyed = "" if result.keyed_from is None else (
            ", every entry keyed" if result.keyed_from == 1 else
            f", keyed from entry {result.keyed_from} (those before are from before the audit key)")
        print(f"audit log intact: {result.entries} entries{keyed}, {head}")
        return 0
    print(f"audit log BROKEN ({result.entries} entries read):", file=sys.stderr)
    for problem in result.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


async def _audit_export(settings: Settings, subject: str | None, since: str | None) -> int:
    """The audit log as JSON Lines on stdout, the whole chain or one subject's entries, from ``since`` on."""
    from ..domain.timestamps import parse_timestamp
    from ..privacy.audit import AuditLog, as_json
    from ..privacy.pseudonyms import Pseudonymizer
    from .runtime import SystemClock, audit_keys, open_store

    start = parse_timestamp(since, "--since") if since is not None else None
    key, *previous = audit_keys(settings, create=False)
    store = open_store(settings)
    try:
        await store.migrate()
        log_ = AuditLog(store, SystemClock(), Pseudonymizer(await store.secret("pseudonyms"), store), key, previous)
        async for chained in log_.entries(subject):  # one subject's: by every name the audit knows them by
            if start is None or chained.entry.at >= start:
                print(json.dumps(as_json(chained), ensure_ascii=False, separators=(",", ":")))
    finally:
        await store.close()
    return 0


async def _requests(settings: Settings, status: str | None, overdue: bool) -> int:
    """Data subject requests, oldest first, open ones past their due date flagged OVERDUE."""
    from .runtime import SystemClock, open_store

    now = SystemClock().now()
    store = open_store(settings)
    try:
        await store.migrate()
        async with store.read() as repo:
            found = [r for r in await repo.requests(status=status) if not overdue or r.overdue(now)]
    finally:
        await store.close()
    for r in found:
        who = f"user {r.user_id}" if r.user_id is not None else f"erased subject {r.subject}"
        flag = "  OVERDUE" if r.overdue(now) else ""
        print(f"#{r.id} {r.kind} ({r.regime}) {r.status} due {r.due_at.isoformat()}{flag}  {who}  "
              f"verification: {r.verification}  by {r.requested_by}" + (f"  reason: {r.reason}" if r.reason else ""))
    if not found:
        print("no requests" + (" overdue" if overdue else "") + (f" with status {status}" if status else ""))
    return 0


async def _rights_call(settings: Settings, tool: str, user_id: str, caller: str | None) -> dict[str, Any]:
    """Call a rights tool as ``caller`` (default: the local caller) through the gated server in this process,
    so the command is checked by role and audited exactly like the same call over MCP."""
    from mcp import Client
    from mcp.types import TextContent

    from .app import build_server
    from .runtime import bootstrap

    name = caller or settings.local_caller
    if name is None or name not in settings.callers:
        raise ConfigError(f"no caller {name!r} to act as: give --caller, one of {', '.join(settings.callers)}")
    runtime = await bootstrap(settings)
    try:
        async with Client(build_server(runtime, local_caller=name), cache=None) as client:
            result = await client.call_tool(tool, {"user_id": user_id})
    finally:
        await runtime.close()
    if result.is_error or result.structured_content is None:
        text = " ".join(c.text for c in result.content if isinstance(c, TextContent))
        raise ConfigError(f"{tool} refused: {text}")
    document: dict[str, Any] = result.structured_content
    return document


def _write_export(document: dict[str, Any], out: Path | None) -> None:
    text = json.dumps(document, ensure_ascii=False, indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)  # personal data: readable by the owner only
    out.write_text(text, encoding="utf-8")
    print(f"exported {document.get('user_id')} to {out}", file=sys.stderr)


async def _migrate(settings: Settings) -> str | None:
    from .runtime import open_store

    store = open_store(settings)
    try:
        await store.migrate()
        return await store.schema_revision()
    finally:
        await store.close()


def _settings_error(exc: SettingsError) -> str:
    """An environment value the settings could not even parse (a structured key given as non-JSON)."""
    found = re.search(r'field "([^"]+)"', str(exc))
    if found is None:
        return str(exc)
    key = found.group(1)
    env = ENV_PREFIX + key.upper()
    return f"{key}: {env} must hold JSON for this key, or set its keys one at a time as {env}__<KEY>"


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
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"HTTP bind address (default {DEFAULT_HOST}); "
                       "a non-loopback address needs callers with tokens")
    serve.add_argument("--port", type=_port, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT}; "
                       "0 picks a free one)")

    demo = with_config(sub.add_parser("demo", help="load the demo catalog and population, then serve over HTTP"))
    demo.add_argument("--users", type=int, default=500)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--host", default=DEFAULT_HOST)
    demo.add_argument("--port", type=_port, default=DEFAULT_PORT)
    demo.add_argument("--no-serve", action="store_true", help="load the data and exit")

    audit = sub.add_parser("audit", help="the audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    with_config(audit_sub.add_parser("verify", help="check the keyed hash chain with the audit key (audit.key or "
                                     "<data_dir>/audit.key); exit 1 if anything was altered"))
    export = with_config(audit_sub.add_parser("export", help="write the audit log as JSON Lines to stdout, with "
                                              "each entry's hashes and key id, to verify against the chain"))
    export.add_argument("--subject", metavar="USER", help="only the entries about this user")
    export.add_argument("--since", metavar="T", help="only entries from this time on (ISO 8601 with a zone)")

    requests = with_config(sub.add_parser("requests", help="list data subject requests, overdue ones flagged"))
    requests.add_argument("--status", choices=STATUSES)
    requests.add_argument("--overdue", action="store_true", help="only open requests past their due date")

    token = sub.add_parser("token", help="bearer tokens for HTTP callers")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    new = token_sub.add_parser("new", help="make a token for a caller and print the digest to configure")
    new.add_argument("caller")

    with_config(sub.add_parser("migrate", help="create or upgrade the database schema"))

    learn = with_config(sub.add_parser("learn", help="apply queued signals (update_frequency: batch) and refit "
                                       "the shared item model"))
    learn.add_argument("--all", action="store_true", help="relearn every user from their stored events")
    with_config(sub.add_parser("reindex", help="rebuild the similarity index from the database"))

    export = with_config(sub.add_parser("export", help="everything held about a user, as one JSON document "
                                        "(schema://export)"))
    export.add_argument("user_id")
    export.add_argument("--out", type=Path, help="write it to this file (mode 0600) instead of stdout")
    erase = with_config(sub.add_parser("erase", help="erase a user from every store; prints the receipt"))
    erase.add_argument("user_id")
    for rights in (export, erase):
        rights.add_argument("--caller", help="act as this caller, who needs the privacy_officer role "
                            "(default: local_caller)")
    retention = with_config(sub.add_parser(
        "retention", help="purge behavioural data older than user_profiling.retention_days and recompute what was "
        "learned from it (a running server does this daily)"))
    retention.add_argument("--dry-run", action="store_true", help="report per store what would go; change nothing")
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
            if not args.no_serve:
                _caller_source(settings, "http", args.host)  # refuse a bind it would not serve before loading
            summary = anyio.run(_demo, settings, args.users, args.seed)
            print("demo data loaded: " + ", ".join(f"{k} {v}" for k, v in summary.items()), file=sys.stderr)
            if not args.no_serve:
                anyio.run(_serve, settings, "http", args.host, args.port, args.config)
        elif args.command == "audit" and args.audit_command == "export":
            return anyio.run(_audit_export, settings, args.subject, args.since)
        elif args.command == "audit":
            return anyio.run(_verify, settings)
        elif args.command == "requests":
            return anyio.run(_requests, settings, args.status, args.overdue)
        elif args.command == "migrate":
            print(f"schema at revision {anyio.run(_migrate, settings)}")
        elif args.command == "learn":
            print(anyio.run(_learn, settings, args.all))
        elif args.command == "export":
            _write_export(anyio.run(_rights_call, settings, "export_user_data", args.user_id, args.caller), args.out)
        elif args.command == "erase":
            receipt = anyio.run(_rights_call, settings, "erase_user", args.user_id, args.caller)
            print(json.dumps(receipt, indent=2))
            return 0 if receipt.get("complete") else 1
        elif args.command == "reindex":
            print(f"indexed {anyio.run(_reindex, settings)} users who consent to profiling")
        elif args.command == "retention":
            print(anyio.run(_retention, settings, args.dry_run))
    except ConfigError as exc:
        print(f"mnky-profiles: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"mnky-profiles: invalid configuration: {_settings_error(exc)}", file=sys.stderr)
        return 2
    except DomainError as exc:  # e.g. a demo of another seed already loaded
        print(f"mnky-profiles: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        # Its messages say why and what to change, e.g. PostgreSQL unreachable, or a second server on the same
        # data (a chat client's stdio server while the HTTP one runs: one server at a time uses a data directory).
        print(f"mnky-profiles: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
