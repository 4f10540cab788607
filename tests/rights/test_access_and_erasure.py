"""Access and erasure through the MCP surface and the command line: export_user_data hands over everything every
holder keeps, in the published schema; erase_user removes it everywhere and returns a receipt that names nobody."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]
import pytest

from mnky_profiles.server.cli import main
from mnky_profiles.server.runtime import bootstrap

from ..conftest import CATALOG, PG_URL, FakeClock, World, make_settings
from ..support.clients import call, connect, resource_text, tool_text
from .test_personal_data import ANA, BOB, HOLDERS, held, seed

pytestmark = pytest.mark.anyio


async def seeded(world: World) -> None:
    async with connect(world.server("privacy-officer")) as c:
        await seed(c, ANA, "anamarker")
        await seed(c, BOB, "bobmarker")
        await call(c, "update_profile", user_id=ANA, attributes={"country": "PT"}, source="external:crm",
                   confidence=0.6)
    async with connect(world.server("shopping-assistant")) as c:
        await call(c, "get_profile", user_id=ANA, purpose="personalization")
    await world.runtime.usecases.model.fit()


async def test_the_export_holds_everything_from_every_holder_in_the_published_schema(world: World) -> None:
    await seeded(world)
    async with connect(world.server("privacy-officer")) as c:
        exported = await call(c, "export_user_data", user_id=ANA)
        schema = json.loads(resource_text(await c.read_resource("schema://export")))["json_schema"]
    jsonschema.validate(exported, schema)
    assert schema["$id"] == "schema://export/v1"
    assert (exported["format"], exported["version"], exported["user_id"]) == ("mnky-profiles/export", 1, ANA)
    assert exported.get("withheld", []) == []  # the privacy officer sees all, whatever the purpose uses
    assert set(exported["holders"]) == {"audit_log", "similarity_index", "database", "pseudonym_cache",
                                        "shared_model"}

    attributes = exported["attributes"]
    assert [a["value"] for a in attributes["name"]] == ["anamarker name"]
    assert [a["value"] for a in attributes["contact"]] == ["anamarker@example.org"]
    assert attributes["location"] == [{"field": "country", "value": "PT", "source": "external:crm",
                                       "confidence": 0.6, "observed_at": attributes["location"][0]["observed_at"]}]
    assert sorted(attributes["stated_preferences"][0]["value"]) == ["anamarker-tag", "vanilla"]
    assert [e["event_type"] for e in exported["events"]] == ["purchase"]
    assert [e["properties"] for e in exported["emotional_events"]] == [{"mood": "calm"}]
    assert {p["token"] for p in exported["stated_preferences"]} >= {"note:vanilla", "tag:anamarker-tag"}
    assert exported["learned_preferences"] and all(p["source"] == "implicit" for p in exported["learned_preferences"])
    assert len(exported["vector"]["values"]) == world.runtime.embedder.dim
    assert exported["similarity_index"] == pytest.approx(exported["vector"]["values"], abs=1e-6)
    assert {c["purpose"] for c in exported["consent_history"]} == {"personalization", "recommendation", "profiling",
                                                                   "wellbeing"}
    assert "anamarker agreed in chat" in {c.get("evidence") for c in exported["consent_history"]}
    accesses = {(a["caller"], a["action"], a["purpose"]) for a in exported["accesses"]}
    assert ("shopping-assistant", "tool:get_profile", "personalization") in accesses
    assert ("privacy-officer", "tool:update_profile", "service") in accesses
    text = json.dumps(exported)
    assert BOB not in text and "bobmarker" not in text and "secret" not in text


async def test_export_and_erasure_are_for_the_privacy_officer_and_known_users_only(world: World) -> None:
    await seeded(world)
    async with connect(world.server("shopping-assistant")) as c:
        for tool in ("export_user_data", "erase_user"):
            refused = await c.call_tool(tool, {"user_id": ANA})
            assert refused.is_error and "privacy_officer" in tool_text(refused), tool
    assert (await held(world, ANA))["database"]
    async with connect(world.server("privacy-officer")) as c:
        for tool in ("export_user_data", "erase_user"):
            unknown = await c.call_tool(tool, {"user_id": "nobody-here-1"})
            assert unknown.is_error and "Nothing is held about" in tool_text(unknown), tool
        tools = {t.name: t for t in (await c.list_tools()).tools}
    hints = tools["erase_user"].annotations
    assert hints is not None and hints.destructive_hint is True and hints.read_only_hint is False
    assert tools["export_user_data"].annotations is not None
    assert tools["export_user_data"].annotations.read_only_hint is True


async def test_erasure_reaches_every_holder_and_returns_a_receipt_without_personal_data(world: World) -> None:
    await seeded(world)
    runtime = world.runtime
    before = await held(world, ANA)
    bob_before = await held(world, BOB)
    pseudonym = await runtime.pseudonyms.subject(ANA)
    async with connect(world.server("privacy-officer")) as c:
        receipt = await call(c, "erase_user", user_id=ANA)
        again = await c.call_tool("erase_user", {"user_id": ANA})
        assert again.is_error and "Nothing is held about" in tool_text(again)
        gone = await c.call_tool("export_user_data", {"user_id": ANA})
        assert gone.is_error and "Nothing is held about" in tool_text(gone)
        similar = await call(c, "find_similar_users", user_id=BOB, purpose="profiling", min_similarity=-1)
        assert not similar.get("neighbours")

    assert receipt["complete"] is True and receipt["audit_pseudonym"] == pseudonym
    assert [h["holder"] for h in receipt["holders"]] == HOLDERS
    by_holder = {h["holder"]: h for h in receipt["holders"]}
    assert by_holder["database"]["removed"] == before["database"]
    assert by_holder["similarity_index"]["removed"] == {"vector": 1}
    assert by_holder["shared_model"]["removed"] == {"training_history": 1}
    assert by_holder["audit_log"]["removed"] == {"entries_unlinked": before["audit_log"]["entries"]}
    assert all(h["remaining"] == {} for h in receipt["holders"])
    text = json.dumps(receipt)
    assert ANA not in text and "anamarker" not in text
    after = await held(world, ANA)
    assert {h: c for h, c in after.items() if h != "audit_log"} == {h: {} for h in HOLDERS if h != "audit_log"}
    # Calls about the id after its erasure (this one's own entry among them) are named with the server's key, as
    # for any id without a profile; none of the entries from before is among them.
    since = [e.entry.action async for e in runtime.audit.entries(ANA)]
    assert sorted(since) == ["tool:erase_user", "tool:erase_user", "tool:export_user_data"]
    assert len([e async for e in runtime.audit.entries() if e.entry.subject == pseudonym]) == \
        before["audit_log"]["entries"]
    bob_before["audit_log"]["entries"] += 1  # find_similar_users above
    assert await held(world, BOB) == bob_before
    assert (await runtime.audit.verify()).ok


async def _seeded_and_closed(backend: str, tmp_path: Path, clock: FakeClock, schema: str | None) -> None:
    runtime = await bootstrap(make_settings(backend, tmp_path, schema), clock)
    try:
        async with runtime.store.write() as repo:
            await repo.put_items(CATALOG)
        await seeded(World(runtime, clock))
    finally:
        await runtime.close()


async def _pg(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def test_the_command_line_exports_and_erases(backend: str, tmp_path: Path, clock: FakeClock, capsys: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``mnky-profiles export`` and ``erase`` on data a server left, as the privacy officer, through the gate."""
    schema = "t_" + uuid.uuid4().hex[:16] if backend == "postgresql" else None
    monkeypatch.setenv("MNKY_DATA_DIR", str(tmp_path))  # the packaged settings otherwise
    if schema is not None:
        anyio.run(_pg, f"CREATE SCHEMA {schema}")
        monkeypatch.setenv("MNKY_USER_PROFILING__STORAGE", "postgresql")
        monkeypatch.setenv("MNKY_DATABASE_URL", PG_URL)
        monkeypatch.setenv("MNKY_DATABASE_SCHEMA", schema)
    try:
        anyio.run(_seeded_and_closed, backend, tmp_path, clock, schema)
        out = tmp_path / "exports" / "ana.json"
        assert main(["export", ANA]) == 2  # the local caller lacks the role
        assert "privacy_officer" in capsys.readouterr().err
        assert main(["export", ANA, "--caller", "privacy-officer", "--out", str(out)]) == 0
        exported = json.loads(out.read_text())
        assert exported["user_id"] == ANA and exported["attributes"]["name"][0]["value"] == "anamarker name"
        assert out.stat().st_mode & 0o077 == 0
        capsys.readouterr()
        assert main(["erase", ANA, "--caller", "privacy-officer"]) == 0
        printed = capsys.readouterr().out
        receipt = json.loads(printed)
        assert receipt["complete"] is True and ANA not in printed
        assert main(["export", ANA, "--caller", "privacy-officer"]) == 2
        assert "Nothing is held about" in capsys.readouterr().err
        assert main(["export", BOB, "--caller", "privacy-officer"]) == 0
        assert json.loads(capsys.readouterr().out)["user_id"] == BOB
    finally:
        if schema is not None:
            anyio.run(_pg, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


async def test_a_privacy_officer_sees_only_its_own_categories_in_an_export(backend: str, tmp_path: Path,
                                                                          clock: FakeClock) -> None:
    """The rights handlers' purpose does not narrow the export; the caller's categories still do."""
    from ..conftest import open_world

    callers = {"privacy-officer": {"purposes": ["service", "personalization", "recommendation", "profiling",
                                                "wellbeing"], "categories": ["*"],
                                   "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
               "consent-desk": {"purposes": ["service"], "categories": ["user.consent"],
                                "roles": ["privacy_officer"]}}
    async with open_world(backend, tmp_path, clock, callers=callers, local_caller="privacy-officer") as world:
        async with connect(world.server("privacy-officer")) as c:
            await seed(c, ANA, "anamarker")
        async with connect(world.server("consent-desk")) as c:
            exported = await call(c, "export_user_data", user_id=ANA)
    assert exported["consent_history"] and exported["accesses"]
    assert exported.get("attributes", {}) == {} and "events" not in exported and "vector" not in exported
    withheld = {(w["field"], w["reason"]) for w in exported["withheld"]}
    assert ("events", "caller_not_permitted") in withheld
    assert ("attributes.name", "caller_not_permitted") in withheld
    assert "anamarker name" not in json.dumps(exported)
