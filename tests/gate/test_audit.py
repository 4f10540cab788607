"""The audit log: one entry per tool call, resource read and prompt, rejected ones included; no raw identifiers
or values in it; and a hash chain whose verification (in code and on the command line) finds any changed,
removed or reordered entry, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import sqlalchemy as sa
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from mnky_profiles.server.cli import main
from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.repositories import SQLRepositories

from ..conftest import ERAS, PG_URL, World
from ..support.clients import connect
from ..support.gate import audit_length, newest_entry

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
    ("tool", "no_such_tool", {"user_id": USER}, "tool:no_such_tool"),
    ("resource", f"profile://{USER}", {}, "resource:profile://{user_id}"),
    ("resource", f"consent://{USER}", {}, "resource:consent://{user_id}"),
    ("resource", "profile://ghost", {}, "resource:profile://{user_id}"),
    ("resource", f"profile://{USER}/extra", {}, "resource:profile://..."),  # matches no resource
    ("resource", f"{USER}://x", {}, "resource:?"),
    ("resource", "schema://profile", {}, "resource:schema://profile"),
    ("resource", "policy://purposes", {}, "resource:policy://purposes"),
    ("prompt", "personalize", {"user_id": USER, "purpose": "personalization"}, "prompt:personalize"),
    ("prompt", "personalize", {"user_id": USER, "purpose": "nonsense"}, "prompt:personalize"),
    ("prompt", "privacy_summary", {"user_id": USER}, "prompt:privacy_summary"),
    ("prompt", "no_such_prompt", {"user_id": USER}, "prompt:no_such_prompt"),
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


def config_file(world: World, path: Path) -> Path:
    settings = world.runtime.settings
    data: dict[str, Any] = {"data_dir": str(settings.data_dir),
                            "user_profiling": {"storage": settings.user_profiling.storage}}
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
    config = config_file(world, tmp_path / "config.yaml")
    code, output = await audit_verify(config, capsys)
    assert code == 0 and "audit log intact: 6 entries" in output, output
    await tamper(world, "DELETE FROM audit_log WHERE seq = 4")
    code, output = await audit_verify(config, capsys)
    assert code == 1 and "BROKEN" in output and "entry 4 is missing" in output, output
