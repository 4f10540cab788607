"""The personal-data port: every holder the bootstrap lists says what it keeps about a subject, hands it over and
erases it. After an erasure nothing anywhere names the subject, their old audit entries stay in the chain but can
no longer be told apart from anyone's, and nobody else lost anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
import sqlalchemy as sa

from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.personal import DEPENDENT_TABLES, SUBJECT_TABLES
from mnky_profiles.store.sql.repositories import SQLRepositories
from mnky_profiles.store.sql.store import SQLStore

from ..conftest import FakeClock, World, open_world
from ..support.clients import call, connect, tool_text

pytestmark = pytest.mark.anyio

ANA, BOB = "ana-erased-7q", "bob-kept-3x"
HOLDERS = ["audit_log", "similarity_index", "database", "pseudonym_cache", "shared_model"]




async def seed(c: Any, user_id: str, marker: str) -> None:
    await call(c, "update_profile", user_id=user_id, create=True, attributes={
        "display_name": f"{marker} name", "email": f"{marker}@example.org"})
    for purpose in ("personalization", "recommendation", "profiling"):
        await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test")
    await call(c, "update_profile", user_id=user_id, attributes={"likes": ["vanilla", f"{marker}-tag"]})
    await call(c, "record_consent", user_id=user_id, purpose="wellbeing", granted=True, source="test",
               evidence=f"{marker} agreed in chat")
    await call(c, "record_event", user_id=user_id, event_type="purchase", item_id="candle-lavender")
    await call(c, "record_event", user_id=user_id, event_type="mood_check_in", properties={"mood": "calm"})
    await call(c, "get_profile", user_id=user_id, purpose="personalization")


async def held(world: World, user_id: str) -> dict[str, dict[str, int]]:
    return {h.holder: await h.held(user_id) for h in world.runtime.holders}


async def rows_naming(world: World, *needles: str) -> list[str]:
    """Every row of every table whose text holds one of the needles."""
    found = []
    async with world.runtime.store.read() as repo:
        for table in schema.metadata.sorted_tables:
            for row in (await cast(SQLRepositories, repo).conn.execute(sa.select(table))).all():
                if any(n in repr(tuple(row)) for n in needles):
                    found.append(f"{table.name}: {tuple(row)!r}")
    return found


def test_the_database_finds_subject_rows_by_schema() -> None:
    assert {t.name for t in SUBJECT_TABLES} == {t.name for t in schema.metadata.sorted_tables if "user_id" in t.c}
    assert {t.name for t, _, _ in DEPENDENT_TABLES} == {"pending_events"}
    # Children before parents: rows can be deleted in this order.
    assert [t.name for t in SUBJECT_TABLES][-1] == "profiles"


async def test_every_holder_holds_exports_and_erases_one_subject(world: World) -> None:
    runtime = world.runtime
    async with connect(world.server("privacy-officer")) as c:
        await seed(c, ANA, "anamarker")
        await seed(c, BOB, "bobmarker")
    await runtime.usecases.model.fit()
    assert [h.holder for h in runtime.holders] == HOLDERS

    before = await held(world, ANA)
    assert set(before["database"]) >= {"profiles", "subject_keys", "attributes", "events", "consents",
                                       "preferences", "user_vectors"}
    assert before["similarity_index"] == {"vector": 1}
    assert before["audit_log"]["entries"] >= 7
    assert before["pseudonym_cache"] == {"key": 1} and before["shared_model"] == {"training_history": 1}
    exported = {h.holder: await h.export(ANA) for h in runtime.holders}
    text = json.dumps(exported)  # JSON as it is
    assert "anamarker" in text and "bobmarker" not in text and BOB not in text
    database = exported["database"]
    assert {a["field"] for a in database["attributes"]} == {"display_name", "email", "likes"}
    assert all({"source", "confidence", "observed_at"} <= set(a) for a in database["attributes"])
    assert {e["event_type"] for e in database["events"]} == {"purchase", "mood_check_in"}
    assert "subject_keys" not in database and "secret" not in text
    assert len(exported["similarity_index"]["vector"]) == runtime.embedder.dim
    assert {e["action"] for e in exported["audit_log"]["entries"]} >= {"tool:update_profile", "tool:get_profile"}

    old_pseudonym = await runtime.pseudonyms.subject(ANA)
    bob_before = await held(world, BOB)
    erased = {h.holder: await h.erase(ANA) for h in runtime.holders}
    assert erased["database"] == before["database"]
    assert erased["audit_log"] == {"entries_unlinked": before["audit_log"]["entries"]}

    assert await held(world, ANA) == {holder: {} for holder in HOLDERS}
    assert await held(world, BOB) == bob_before
    assert await rows_naming(world, ANA, "anamarker") == []
    # The audit entries stay, chained as before, under a pseudonym nobody can tie to the person any more.
    kept = [e async for e in runtime.audit.entries() if e.entry.subject == old_pseudonym]
    assert len(kept) == before["audit_log"]["entries"]
    assert await runtime.pseudonyms.subject(ANA) != old_pseudonym
    assert (await runtime.audit.verify()).ok
    assert runtime.usecases.model.current is not None and runtime.usecases.model.current.users == 1
    async with connect(world.server("privacy-officer")) as c:
        similar = await call(c, "find_similar_users", user_id=BOB, purpose="profiling", min_similarity=-1)
        assert similar.get("neighbours") in (None, [])
        missing = await c.call_tool("get_profile", {"user_id": ANA, "purpose": "service"})
        assert missing.is_error and "No profile exists" in tool_text(missing)


async def test_the_local_index_keeps_no_trace_on_disk(tmp_path: Path, clock: FakeClock) -> None:
    async with open_world("sqlite", tmp_path, clock) as world:
        async with connect(world.server("privacy-officer")) as c:
            await seed(c, ANA, "anamarker")
            await seed(c, BOB, "bobmarker")
        await world.runtime.index.erase(ANA)
        files = sorted((tmp_path / "vectors").iterdir())
        assert files
        assert not [f.name for f in files if ANA.encode() in f.read_bytes()]
        assert any(BOB.encode() in f.read_bytes() for f in files)


async def test_queued_signals_are_held_and_erased(tmp_path: Path, clock: FakeClock) -> None:
    async with open_world("sqlite", tmp_path, clock, user_profiling={"update_frequency": "batch"}) as world:
        async with connect(world.server("privacy-officer")) as c:
            await seed(c, ANA, "anamarker")
        database = next(h for h in world.runtime.holders if h.holder == "database")
        assert (await database.held(ANA))["pending_events"] == 2
        assert len((await database.export(ANA))["pending_events"]) == 2
        await database.erase(ANA)
        assert await database.held(ANA) == {}
        assert await world.runtime.usecases.learning.learn() == 0


async def test_an_erasure_by_another_process_reaches_the_key_cache_within_its_lifetime(world: World) -> None:
    from mnky_profiles.privacy.pseudonyms import Pseudonymizer

    now = [0.0]
    store = cast(SQLStore, world.runtime.store)  # its subject keys, and its erasure as another process runs it
    pseudonyms = Pseudonymizer(b"k" * 32, store, ttl=60, clock=lambda: now[0])
    async with connect(world.server("privacy-officer")) as c:
        await call(c, "update_profile", user_id=ANA, create=True, attributes={"language": "en"})
    first = await pseudonyms.subject(ANA)
    assert first == await world.runtime.pseudonyms.subject(ANA)  # the subject's own key, not the server's
    await store.erase(ANA)  # as another process would: this one's cache still has the key
    assert await pseudonyms.subject(ANA) == first
    now[0] += 61
    assert await pseudonyms.subject(ANA) != first
