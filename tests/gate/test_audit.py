"""The audit log: one entry per tool call, resource read, prompt and completion, rejected ones included, whatever
their arguments; only names the server declares and no raw identifiers or values in it; and a hash chain keyed
with an audit key kept out of the database, whose verification (in code and on the command line) finds any
changed, removed or reordered entry and any entry rewritten without the key, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import sqlite3
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import sqlalchemy as sa
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import EmptyResult, PromptReference, Request, ResourceTemplateReference

from mnky_profiles.domain.audit import AuditEntry, ChainedEntry
from mnky_profiles.privacy.audit import GENESIS, SEAL, canonical
from mnky_profiles.server.cli import main
from mnky_profiles.server.runtime import bootstrap, open_store
from mnky_profiles.server.settings import DEFAULT_CONFIG, ConfigError, Settings, load_settings
from mnky_profiles.store import migrations
from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.repositories import SQLRepositories

from ..conftest import ERAS, PG_URL, FakeClock, World, make_settings, open_world, pg_schema
from ..support.clients import connect
from ..support.gate import audit_length, newest_entry, snapshot

pytestmark = pytest.mark.anyio

USER = "user:ana.marker@example.org"  # a valid user id that a leak into the log would show plainly
VALUES = ("Ana Marker-Value", "ana.marker@mail.example", "+351-999-marker", "lavender-marker", "Lisbon-marker")


async def seed(world: World) -> None:
    async with connect(world.server("privacy-officer")) as c:
        result = await c.call_tool("update_profile", {"user_id": USER, "create": True, "attributes": {
            "display_name": VALUES[0], "email": VALUES[1], "phone": VALUES[2], "city": VALUES[4]}})
        assert not result.is_error
        result = await c.call_tool("record_consent", {"user_id": USER, "purpose": "personalization",
                                                      "granted": True, "source": "web", "evidence": VALUES[0]})
        assert not result.is_error
        result = await c.call_tool("update_profile", {"user_id": USER, "attributes": {"likes": [VALUES[3]]}})
        assert not result.is_error


# Each: what to send, and the audit action it must be recorded under.
CALLS: list[tuple[str, str, dict[str, Any], str]] = [
    ("tool", "get_profile", {"user_id": USER, "purpose": "personalization"}, "tool:get_profile"),
    ("tool", "get_profile", {"user_id": USER, "purpose": "marketing"}, "tool:get_profile"),  # no consent
    ("tool", "get_profile", {"user_id": USER, "purpose": f"{USER} {VALUES[1]}"}, "tool:get_profile"),  # invalid
    ("tool", "get_profile", {"user_id": "nobody"}, "tool:get_profile"),  # missing argument
    ("tool", "check_consent", {"user_id": USER, "purpose": "wellbeing"}, "tool:check_consent"),
    ("tool", "update_profile", {"user_id": USER, "attributes": {"interaction_style": "warm"}}, "tool:update_profile"),
    ("tool", "record_event", {"user_id": USER, "event_type": "search", "properties": {"query": VALUES[3]}},
     "tool:record_event"),
    ("tool", "no_such_tool", {"user_id": USER}, "tool:?"),  # a name the server does not declare
    ("tool", USER, {"user_id": USER}, "tool:?"),
    ("tool", "ana.marker.example.org", {"user_id": USER}, "tool:?"),  # looks like a name, is caller text
    ("resource", f"profile://{USER}", {}, "resource:profile://{user_id}"),
    ("resource", f"consent://{USER}", {}, "resource:consent://{user_id}"),
    ("resource", "profile://ghost", {}, "resource:profile://{user_id}"),
    ("resource", f"profile://{USER}/extra", {}, "resource:?"),  # matches no resource
    ("resource", f"{USER}://x", {}, "resource:?"),
    ("resource", f"schema://{USER}", {}, "resource:?"),
    ("resource", "ana.marker://profile", {}, "resource:?"),  # a scheme is caller text too
    ("resource", "schema://profile", {}, "resource:schema://profile"),
    ("resource", "policy://purposes", {}, "resource:policy://purposes"),
    ("prompt", "personalize", {"user_id": USER, "purpose": "personalization"}, "prompt:personalize"),
    ("prompt", "personalize", {"user_id": USER, "purpose": "nonsense"}, "prompt:personalize"),
    ("prompt", "privacy_summary", {"user_id": USER}, "prompt:privacy_summary"),
    ("prompt", "no_such_prompt", {"user_id": USER}, "prompt:?"),
    ("prompt", USER, {"user_id": USER}, "prompt:?"),
]


async def send(client: Client, kind: str, target: str, arguments: dict[str, Any]) -> None:
    try:
        if kind == "tool":
            await client.call_tool(target, arguments)
        elif kind == "resource":
            await client.read_resource(target)
        else:
            await client.get_prompt(target, arguments)
    except MCPError:
        pass  # a refused resource read or prompt is a protocol error; it is audited all the same


@pytest.mark.parametrize("mode", ERAS)
async def test_every_call_appends_exactly_one_entry(world: World, mode: str) -> None:
    await seed(world)
    async with connect(world.server("shopping-assistant"), mode) as c:
        for kind, target, arguments, action in CALLS:
            before = await audit_length(world.runtime)
            await send(c, kind, target, arguments)
            assert await audit_length(world.runtime) == before + 1, (kind, target)
            entry = await newest_entry(world.runtime)
            assert entry.action == action and entry.caller == "shopping-assistant", (target, entry)
        before = await audit_length(world.runtime)
        await c.list_tools()
        await c.list_resources()
        await c.list_resource_templates()
        await c.list_prompts()
        assert await audit_length(world.runtime) == before  # listing the surface discloses nobody


async def test_entries_never_hold_raw_identifiers_or_values(world: World) -> None:
    await seed(world)
    for caller in ("shopping-assistant", "privacy-officer", "insights-agent"):
        async with connect(world.server(caller)) as c:
            for kind, target, arguments, _ in CALLS:
                await send(c, kind, target, arguments)
    async with world.runtime.store.read() as repo:
        rows = (await cast(SQLRepositories, repo).conn.execute(sa.select(schema.audit_log))).all()
    assert len(rows) > 3 * len(CALLS)
    subject = await world.runtime.pseudonyms.subject(USER)
    assert sum(1 for r in rows if r.subject == subject) > len(CALLS)
    for row in rows:
        text = repr(tuple(row))
        assert USER not in text and "ana.marker" not in text, text
        assert not [v for v in VALUES if v in text], text
        assert row.subject is None or row.subject.startswith("s_")


# -- only names the server declares ------------------------------------------------------------------------------
SOMEONE = "someone@example.com"  # caller text that must never reach the log
NAMED: list[tuple[str, str, dict[str, Any], str]] = [
    ("tool", SOMEONE, {"user_id": SOMEONE}, "tool:?"),
    ("tool", "someone.example.com", {}, "tool:?"),
    ("tool", "get_profile", {"user_id": SOMEONE, "purpose": SOMEONE}, "tool:get_profile"),
    ("resource", f"profile://{SOMEONE}", {}, "resource:profile://{user_id}"),
    ("resource", f"consent://{SOMEONE}", {}, "resource:consent://{user_id}"),
    ("resource", f"profile://{SOMEONE}/history", {}, "resource:?"),
    ("resource", f"schema://{SOMEONE}", {}, "resource:?"),
    ("resource", "someone-example-com://profile", {}, "resource:?"),
    ("prompt", SOMEONE, {"user_id": SOMEONE}, "prompt:?"),
    ("prompt", "personalize", {"user_id": SOMEONE, "purpose": SOMEONE}, "prompt:personalize"),
]
PERSONALIZE = PromptReference(type="ref/prompt", name="personalize")
PROFILE = ResourceTemplateReference(type="ref/resource", uri="profile://{user_id}")


async def raw_rows(world: World) -> list[str]:
    """Every row of the audit tables as stored, as text."""
    async with world.runtime.store.read() as repo:
        conn = cast(SQLRepositories, repo).conn
        rows = [*(await conn.execute(sa.select(schema.audit_log))).all(),
                *(await conn.execute(sa.select(schema.audit_head))).all()]
    return [repr(tuple(row)) for row in rows]


async def test_the_log_names_only_what_the_server_declares(world: World) -> None:
    """Unknown names are ``?``, a resource read is named by its declared template; no caller text is stored."""
    async with connect(world.server("privacy-officer")) as c:
        for kind, target, arguments, action in NAMED:
            await send(c, kind, target, arguments)
            assert (await newest_entry(world.runtime)).action == action, target
        await c.complete(PROFILE, {"name": "user_id", "value": "someone@"})
        assert (await newest_entry(world.runtime)).action == "completion:user_id"
        await c.complete(PERSONALIZE, {"name": SOMEONE, "value": SOMEONE})
        assert (await newest_entry(world.runtime)).action == "completion:?"
    rows = await raw_rows(world)
    assert len(rows) == len(NAMED) + 2 + 1  # the entries and the head
    assert not [row for row in rows if "someone" in row or "example.com" in row], rows


# -- every path, whatever its arguments ---------------------------------------------------------------------------
LONE = "\ud800"  # a lone surrogate: no UTF-8 encoding exists for it (JSON "\\ud800")


class RawRequest(Request[dict[str, Any], str]):
    """A request as a client may put it on the wire, with params the SDK's own types would not build."""


def raw(method: str, params: dict[str, Any]) -> Callable[[Client], Awaitable[Any]]:
    return lambda c: c.session.send_request(RawRequest(method=method, params=params), EmptyResult)


Send = Callable[[Client], Awaitable[Any]]
# Each: what is sent, the action it must be recorded under, and whether the SDK's client can send it in the
# modern era too (there it puts tool and prompt names and resource URIs in a header, which must encode).
PATHS: list[tuple[str, Send, str, bool]] = [
    ("tool", lambda c: c.call_tool("get_profile", {"user_id": LONE, "purpose": "service"}), "tool:get_profile",
     True),
    ("tool, nested", lambda c: c.call_tool("record_events", {"events": [{"user_id": LONE, "event_type": "view"}]}),
     "tool:record_events", True),
    ("tool, values", lambda c: c.call_tool("update_profile", {"user_id": LONE, "create": True,
                                                              "attributes": {"display_name": LONE}}),
     "tool:update_profile", True),
    ("unknown tool", lambda c: c.call_tool("no_such_tool", {"user_id": LONE}), "tool:?", True),
    ("unknown tool name", lambda c: c.call_tool(LONE, {"user_id": LONE}), "tool:?", False),
    ("resource", lambda c: c.read_resource(f"profile://{LONE}"), "resource:profile://{user_id}", False),
    ("unknown resource", lambda c: c.read_resource(f"{LONE}://x"), "resource:?", False),
    ("prompt", lambda c: c.get_prompt("personalize", {"user_id": LONE, "purpose": "service"}),
     "prompt:personalize", True),
    ("prompt, one argument", lambda c: c.get_prompt("privacy_summary", {"user_id": LONE}),
     "prompt:privacy_summary", True),
    ("unknown prompt", lambda c: c.get_prompt(LONE, {"user_id": LONE}), "prompt:?", False),
    ("completion", lambda c: c.complete(PERSONALIZE, {"name": "user_id", "value": LONE}), "completion:user_id",
     True),
    ("template completion", lambda c: c.complete(PROFILE, {"name": "user_id", "value": LONE}),
     "completion:user_id", True),
    ("purpose completion", lambda c: c.complete(PERSONALIZE, {"name": "purpose", "value": LONE}),
     "completion:purpose", True),
    ("unknown completion", lambda c: c.complete(PERSONALIZE, {"name": LONE, "value": "x"}), "completion:?", True),
    ("arguments not an object", raw("tools/call", {"name": "get_profile", "arguments": [LONE]}),
     "tool:get_profile", False),
    ("tool name not a string", raw("tools/call", {"name": 5, "arguments": {"user_id": LONE}}), "tool:?", False),
    ("uri not a string", raw("resources/read", {"uri": 5}), "resource:?", False),
    ("prompt argument not a string", raw("prompts/get", {"name": "personalize", "arguments": {"user_id": 5}}),
     "prompt:personalize", False),
    ("completion value not a string", raw("completion/complete", {
        "ref": {"type": "ref/prompt", "name": "personalize"}, "argument": {"name": "user_id", "value": 5}}),
     "completion:user_id", False),
    ("completion without a ref", raw("completion/complete", {"argument": {"name": "user_id", "value": "a"}}),
     "completion:user_id", False),
]


@pytest.mark.parametrize("mode", ERAS)
async def test_every_path_appends_one_entry_whatever_the_ids(world: World, mode: str) -> None:
    await seed(world)
    sent = 0
    async with connect(world.server("privacy-officer"), mode) as c:
        for what, call, action, modern in PATHS:
            if mode != "legacy" and not modern:
                continue  # the client cannot send it in this era (see PATHS)
            before = await audit_length(world.runtime)
            with contextlib.suppress(MCPError):  # refused as a protocol error; audited all the same
                await call(c)
            assert await audit_length(world.runtime) == before + 1, what
            entry = await newest_entry(world.runtime)
            assert (entry.action, entry.caller) == (action, "privacy-officer"), (what, entry)
            assert entry.outcome.startswith("error:") or action.startswith("completion:"), (what, entry)
            assert entry.subject is None or entry.subject.startswith("s_"), (what, entry)
            sent += 1
        # The server still serves, and a lone surrogate is named by the same pseudonym every time.
        assert not (await c.call_tool("check_consent", {"user_id": USER, "purpose": "service"})).is_error
    assert sent == sum(1 for *_, modern in PATHS if modern or mode == "legacy")
    lone = await world.runtime.pseudonyms.subject(LONE)
    named = [e.entry.action async for e in world.runtime.audit.entries() if e.entry.subject == lone]
    assert {"tool:get_profile", "tool:record_events", "prompt:personalize"} <= set(named)
    assert (await world.runtime.audit.verify()).ok


async def test_a_refused_completion_is_audited(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    callers = {"privacy-officer": yaml.safe_load(DEFAULT_CONFIG.read_text())["callers"]["privacy-officer"],
               "writer-only": {"purposes": ["service"], "categories": ["*"], "roles": ["writer"]}}
    async with open_world(backend, tmp_path, clock, callers=callers, local_caller="privacy-officer") as world, \
            connect(world.server("writer-only")) as c:
        for argument in ("user_id", "purpose"):
            before = await audit_length(world.runtime)
            await c.complete(PROFILE, {"name": argument, "value": ""})
            assert await audit_length(world.runtime) == before + 1
        entries = [e.entry async for e in world.runtime.audit.entries()][-2:]
    assert [(e.action, e.caller, e.outcome, e.released) for e in entries] == [
        ("completion:user_id", "writer-only", "error:not_permitted", ()),
        ("completion:purpose", "writer-only", "ok", ())]


# -- the chain ---------------------------------------------------------------------------------------------------
async def fill(world: World, entries: int = 6) -> None:
    await seed(world)
    async with connect(world.server("shopping-assistant")) as c:
        for _ in range(entries - await audit_length(world.runtime)):
            await c.call_tool("check_consent", {"user_id": USER, "purpose": "personalization"})
    assert await audit_length(world.runtime) == entries


async def tamper(world: World, *statements: str) -> None:
    """Change the log behind the server's back, straight in the database."""
    settings = world.runtime.settings
    if settings.user_profiling.storage == "sqlite":
        db = sqlite3.connect(settings.sqlite_path)
        try:
            for statement in statements:
                db.execute(statement)
            db.commit()
        finally:
            db.close()
    else:
        import asyncpg

        conn = await asyncpg.connect(PG_URL, server_settings={"search_path": settings.database_schema})
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
        finally:
            await conn.close()


TAMPERING = {
    "changed text": (["UPDATE audit_log SET caller = 'someone-else' WHERE seq = 3"],
                     "entry 3 was changed after it was written"),
    "changed json": (["UPDATE audit_log SET released = '[\"identity.email\"]' WHERE seq = 2"],
                     "entry 2 was changed after it was written"),
    "removed from the middle": (["DELETE FROM audit_log WHERE seq = 3"], "entry 3 is missing"),
    "removed from the end": (["DELETE FROM audit_log WHERE seq = 6"],
                             "the log ends at entry 5 but entry 6 was the last written"),
    "reordered": (["UPDATE audit_log SET seq = -1 WHERE seq = 2", "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                   "UPDATE audit_log SET seq = 3 WHERE seq = -1"], "entry 2 does not follow the entry before it"),
}


@pytest.mark.parametrize("how", list(TAMPERING))
async def test_verify_finds_tampering(world: World, how: str) -> None:
    await fill(world)
    intact = await world.runtime.audit.verify()
    assert intact.ok and intact.entries == 6 and not intact.problems
    statements, problem = TAMPERING[how]
    await tamper(world, *statements)
    broken = await world.runtime.audit.verify()
    assert not broken.ok
    assert any(p.startswith(problem) for p in broken.problems), broken.problems


def config_file(settings: Settings, path: Path, **extra: Any) -> Path:
    """A settings file for the same data as ``settings``, with ``extra`` top-level keys."""
    data: dict[str, Any] = {"data_dir": str(settings.data_dir),
                            "user_profiling": {"storage": settings.user_profiling.storage}, **extra}
    if settings.user_profiling.storage == "postgresql":
        data |= {"database_url": settings.database_url, "database_schema": settings.database_schema}
    path.write_text(yaml.safe_dump(data))
    return path


async def audit_verify(config: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``mnky-profiles audit verify --config FILE``: the console script's entry point, on a thread of its own."""
    code = await anyio.to_thread.run_sync(main, ["audit", "verify", "--config", str(config)])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


async def test_the_cli_verifies_the_log(world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("MNKY_")]:
        monkeypatch.delenv(name)  # the file alone configures it
    await fill(world)
    config = config_file(world.runtime.settings, tmp_path / "config.yaml")
    code, output = await audit_verify(config, capsys)
    assert code == 0 and "audit log intact: 6 entries" in output, output
    await tamper(world, "DELETE FROM audit_log WHERE seq = 4")
    code, output = await audit_verify(config, capsys)
    assert code == 1 and "BROKEN" in output and "entry 4 is missing" in output, output


# -- the audit key -------------------------------------------------------------------------------------------------
@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.upper().startswith("MNKY_")]:
        monkeypatch.delenv(name)  # the files alone configure what these tests run


def key_id(secret: bytes) -> str:
    return hashlib.sha256(secret).hexdigest()[:16]


def plain(prev: str, seq: int, entry: AuditEntry) -> str:
    """An entry's hash as it was before the audit key, and as anyone can compute it: plain SHA-256."""
    return hashlib.sha256(prev.encode() + b"\n" + canonical(seq, entry)).hexdigest()


def keyed(secret: bytes, prev: str, seq: int, entry: AuditEntry) -> str:
    """An entry's hash under a key: HMAC-SHA256, the key's id among the fields it covers."""
    message = prev.encode() + b"\n" + canonical(seq, entry, key_id(secret))
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def file_key(settings: Settings) -> bytes:
    return bytes.fromhex((settings.data_dir / "audit.key").read_text().strip())


async def test_entries_are_hmacs_under_a_key_kept_out_of_the_database(world: World) -> None:
    await fill(world)
    path = world.runtime.settings.data_dir / "audit.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    secret = file_key(world.runtime.settings)
    chain = [c async for c in world.runtime.audit.entries()]
    assert len(chain) == 6
    for c in chain:
        assert c.key_id == key_id(secret)
        assert c.hash == keyed(secret, c.prev_hash, c.seq, c.entry) != plain(c.prev_hash, c.seq, c.entry)
    stored = repr(await snapshot(world.runtime)) + "".join(await raw_rows(world))
    assert secret.hex() not in stored and secret.hex().upper() not in stored


WRONG = secrets.token_bytes(32)
Rehash = Callable[[str, int, AuditEntry, "str | None"], "tuple[str, str | None]"]


async def rewrite(world: World, start: int, rehash: Rehash) -> None:
    """Change entry ``start`` and recompute it, every entry after it and the head, as whoever can write the
    database would: ``rehash`` gives an entry's (hash, key_id) from (prev_hash, seq, entry, key_id)."""
    chain = [c async for c in world.runtime.audit.entries()]
    prev = chain[start - 2].hash if start > 1 else GENESIS
    statements = []
    for c in chain[start - 1:]:
        entry = replace(c.entry, caller="someone-else") if c.seq == start else c.entry
        digest, kid = rehash(prev, c.seq, entry, c.key_id)
        statements.append(f"UPDATE audit_log SET caller = '{entry.caller}', prev_hash = '{prev}', hash = '{digest}', "
                          f"key_id = {'NULL' if kid is None else repr(kid)} WHERE seq = {c.seq}")
        prev = digest
    statements.append(f"UPDATE audit_head SET seq = {chain[-1].seq}, hash = '{prev}'")
    await tamper(world, *statements)


REWRITES: dict[str, tuple[int, Rehash, str]] = {
    "plain sha256, posing as entries from before the key": (
        3, lambda p, s, e, k: (plain(p, s, e), None), "entry 3 is not keyed but follows keyed entries"),
    "plain sha256, the whole log": (
        1, lambda p, s, e, k: (plain(p, s, e), None), "the log ends with entry 6, which is not keyed"),
    "plain sha256, key id kept": (
        3, lambda p, s, e, k: (plain(p, s, e), k), "entry 3 was changed after it was written"),
    "a wrong key, key id kept": (
        3, lambda p, s, e, k: (hmac.new(WRONG, p.encode() + b"\n" + canonical(s, e, k), hashlib.sha256).hexdigest(),
                               k), "entry 3 was changed after it was written"),
    "a wrong key under its own id": (
        3, lambda p, s, e, k: (keyed(WRONG, p, s, e), key_id(WRONG)), f"entry 3 is keyed with key {key_id(WRONG)}"),
}


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("how", list(REWRITES))
async def test_verify_finds_entries_recomputed_without_the_key(world: World, how: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    await fill(world)
    start, rehash, problem = REWRITES[how]
    await rewrite(world, start, rehash)
    broken = await world.runtime.audit.verify()
    assert not broken.ok and broken.problems[0].startswith(problem), broken.problems
    # The chain itself is consistent, head included: only the key tells.
    assert not [p for p in broken.problems if "does not follow" in p or "last written" in p or "missing" in p]
    code, output = await audit_verify(config_file(world.runtime.settings, tmp_path / "config.yaml"), capsys)
    assert code == 1 and problem in output, output


async def test_whoever_holds_the_key_can_still_rewrite(world: World) -> None:
    """What verify does not prove: a rewrite made with the key itself passes (so the rewrites above are real)."""
    await fill(world)
    secret = file_key(world.runtime.settings)
    await rewrite(world, 3, lambda p, s, e, k: (keyed(secret, p, s, e), key_id(secret)))
    assert (await world.runtime.audit.verify()).ok
    assert [c.entry.caller async for c in world.runtime.audit.entries()][2] == "someone-else"


@asynccontextmanager
async def running(settings: Settings, clock: FakeClock) -> AsyncIterator[World]:
    """The server's runtime on ``settings``, as a start gives it, closed at the end."""
    runtime = await bootstrap(settings, clock)
    try:
        yield World(runtime, clock)
    finally:
        await runtime.close()


@asynccontextmanager
async def database(backend: str) -> AsyncIterator[str | None]:
    """A PostgreSQL schema for the test (dropped afterwards), or None for SQLite."""
    async with AsyncExitStack() as stack:
        yield await stack.enter_async_context(pg_schema()) if backend == "postgresql" else None


async def check_consent(world: World, times: int) -> None:
    async with connect(world.server("shopping-assistant")) as c:
        for _ in range(times):
            await c.call_tool("check_consent", {"user_id": USER, "purpose": "personalization"})


@pytest.mark.usefixtures("clean_environment")
async def test_a_rotated_key_still_verifies_what_it_keyed(backend: str, tmp_path: Path, clock: FakeClock,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    async with database(backend) as pg:
        first = make_settings(backend, tmp_path, pg)
        async with running(first, clock) as world:
            await fill(world, 4)
        old = file_key(first)
        new = secrets.token_bytes(32)
        # The rotation: the current key moves to previous_keys, a new one is set (here from the environment's
        # form of the setting, a hex string), and the server starts again.
        rotated = make_settings(backend, tmp_path, pg, audit={"key": new.hex(), "previous_keys": [old.hex()]})
        async with running(rotated, clock) as world:
            sealed = await world.runtime.audit.last()
            assert sealed is not None and (sealed.seq, sealed.entry.action, sealed.key_id) == (5, SEAL, key_id(new))
            await check_consent(world, 2)
            result = await world.runtime.audit.verify()
            assert result.ok and result.entries == 7, result.problems
            assert [c.key_id async for c in world.runtime.audit.entries()] == [key_id(old)] * 4 + [key_id(new)] * 3
        both = config_file(first, tmp_path / "both.yaml", audit={"key": new.hex(), "previous_keys": [old.hex()]})
        code, output = await audit_verify(both, capsys)
        assert code == 0 and "audit log intact: 7 entries, every entry keyed" in output, output
        only_new = config_file(first, tmp_path / "new.yaml", audit={"key": new.hex()})
        code, output = await audit_verify(only_new, capsys)
        assert code == 1 and f"entry 1 is keyed with key {key_id(old)}" in output, output
        only_old = config_file(first, tmp_path / "old.yaml")  # the key file still holds the old key
        code, output = await audit_verify(only_old, capsys)
        assert code == 1 and f"entry 5 is keyed with key {key_id(new)}" in output, output
        assert "entry 4" not in output  # what the old key keyed still verifies


def legacy_chain(clock: FakeClock, length: int) -> list[ChainedEntry]:
    """Entries as the server wrote them before the audit key: plain SHA-256, no key id."""
    chain, prev = [], GENESIS
    for seq in range(1, length + 1):
        entry = AuditEntry(at=clock.now(), caller="support-assistant", action="tool:get_profile",
                           subject="s_" + "1" * 32, purpose="service", released=("identity.display_name",),
                           withheld=(), outcome="ok")
        chain.append(ChainedEntry(seq, entry, prev, plain(prev, seq, entry)))
        prev = chain[-1].hash
    return chain


@pytest.mark.usefixtures("clean_environment")
async def test_entries_from_before_the_key_are_sealed_at_start(backend: str, tmp_path: Path, clock: FakeClock,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    async with database(backend) as pg:
        settings = make_settings(backend, tmp_path, pg)
        legacy = legacy_chain(clock, 3)
        store = open_store(settings)
        try:  # a log written by the code before revision 0005, which had no key_id column
            await store.db.run_sync(lambda conn: migrations.upgrade(conn, "0004"))

            def write(conn: sa.Connection) -> None:
                for c in legacy:
                    e = c.entry
                    conn.execute(schema.audit_log.insert(), {
                        "seq": c.seq, "at": e.at, "caller": e.caller, "action": e.action, "subject": e.subject,
                        "purpose": e.purpose, "released": list(e.released), "withheld": [], "outcome": e.outcome,
                        "prev_hash": c.prev_hash, "hash": c.hash})
                conn.execute(schema.audit_head.insert(), {"id": 1, "seq": 3, "hash": legacy[-1].hash})

            await store.db.run_sync(write)
        finally:
            await store.close()
        config = config_file(settings, tmp_path / "config.yaml")
        async with running(settings, clock) as world:  # migrates, and seals
            chain = [c async for c in world.runtime.audit.entries()]
            assert chain[:3] == legacy  # kept exactly as they were
            assert (chain[3].entry.action, chain[3].key_id) == (SEAL, key_id(file_key(settings)))
            assert chain[3].prev_hash == legacy[-1].hash
            result = await world.runtime.audit.verify()
            assert result.ok and result.keyed_from == 4, result.problems
        async with running(settings, clock) as world:  # sealed already: a second start adds nothing
            assert await audit_length(world.runtime) == 4
            code, output = await audit_verify(config, capsys)
            assert code == 0 and "keyed from entry 4" in output, output
            # Rewriting an old entry and recomputing what follows in plain SHA-256 breaks at the seal.
            await rewrite(world, 2, lambda p, s, e, k: (plain(p, s, e), k))
            broken = await world.runtime.audit.verify()
            assert not broken.ok and broken.problems[0].startswith("entry 4 was changed"), broken.problems
            # Posing the seal as one more entry from before the key leaves a log that does not end keyed.
            await rewrite(world, 4, lambda p, s, e, k: (plain(p, s, e), None))
            broken = await world.runtime.audit.verify()
            assert broken.problems == ("the log ends with entry 4, which is not keyed: it was rewritten without the "
                                       "audit key, or no server has started since the upgrade (a start seals the "
                                       "log)",), broken.problems
        code, output = await audit_verify(config, capsys)
        assert code == 1 and "entry 4, which is not keyed" in output, output


@pytest.mark.usefixtures("clean_environment")
async def test_the_key_comes_from_the_setting_when_set(tmp_path: Path, clock: FakeClock,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    secret = secrets.token_bytes(32)
    monkeypatch.setenv("MNKY_AUDIT__KEY", secret.hex().upper())  # hex, either case
    settings = make_settings("sqlite", tmp_path)
    async with running(settings, clock) as world:
        await check_consent(world, 1)
        last = await world.runtime.audit.last()
        assert last is not None and last.key_id == key_id(secret)
    assert not (tmp_path / "audit.key").exists()  # no file when the setting gives the key
    code, output = await audit_verify(config_file(settings, tmp_path / "config.yaml"), capsys)
    assert code == 0, output
    monkeypatch.delenv("MNKY_AUDIT__KEY")
    code, output = await audit_verify(config_file(settings, tmp_path / "config.yaml"), capsys)
    assert code == 2 and "no audit key" in output and "MNKY_AUDIT__KEY" in output, output
    assert not (tmp_path / "audit.key").exists()  # verify never makes a key of its own


@pytest.mark.usefixtures("clean_environment")
@pytest.mark.parametrize("audit", [{"key": "abc123"}, {"key": "zz" * 32}, {"previous_keys": ["ab" * 16]}])
def test_a_malformed_key_is_refused_without_echoing_it(tmp_path: Path, audit: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, data_dir=str(tmp_path), audit=audit)
    message = str(caught.value)
    assert f"audit.{next(iter(audit))}" in message and "hex, 64 characters or more" in message
    assert not [v for v in audit.values() if str(v).strip("[]'") in message]


@pytest.mark.usefixtures("clean_environment")
async def test_a_key_file_that_holds_no_key_stops_the_start(tmp_path: Path, clock: FakeClock) -> None:
    (tmp_path / "audit.key").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"audit\.key does not hold an audit key"):
        await bootstrap(make_settings("sqlite", tmp_path), clock)
