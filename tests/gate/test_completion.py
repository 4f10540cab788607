"""``user_id`` completion shows no more than a read would, on both databases, through an MCP client.

A caller that may read no individual (aggregate-only, or seeing none of its purposes' data) is offered nobody; a
caller bound to one subject at most that subject; any other caller only users it could read now for one of its
purposes. At most 20 values, ``has_more`` telling whether there are others, however many users in between it may
not see; one audit entry per completion, never holding what was typed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from mnky_profiles.domain.consent import ConsentRecord, ConsentState
from mnky_profiles.domain.profiles import NewSubject
from mnky_profiles.domain.purposes import PURPOSE_NAMES

from ..conftest import ERAS, FakeClock, World, open_world
from ..support.clients import connect
from ..support.gate import audit_length, audit_text

pytestmark = pytest.mark.anyio

CALLERS: dict[str, Any] = {
    "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                        "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
    "analyst": {"purposes": ["analytics"], "categories": ["user.preference", "user.behavior", "user.segment"],
                "roles": ["reader"], "default_purpose": "analytics"},
    "blind": {"purposes": ["service", "recommendation"], "categories": [], "roles": ["reader"]},
    "recommender": {"purposes": ["recommendation"], "categories": ["user.preference", "user.behavior"],
                    "roles": ["reader"], "default_purpose": "recommendation"},
    "bound": {"purposes": ["service", "personalization"], "categories": ["*"], "roles": ["reader"],
              "subject": "quokka-ana"},
    "bound-recommender": {"purposes": ["recommendation"], "categories": ["user.preference"], "roles": ["reader"],
                          "subject": "quokka-bob", "default_purpose": "recommendation"},
}
PROFILE = ResourceTemplateReference(type="ref/resource", uri="profile://{user_id}")
PERSONALIZE = PromptReference(type="ref/prompt", name="personalize")


@pytest.fixture
async def world(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with open_world(backend, tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as w:
        yield w


def record(user_id: str, state: ConsentState, at: datetime, purpose: str = "recommendation",
           expires_at: datetime | None = None) -> ConsentRecord:
    return ConsentRecord(user_id, purpose, state, "test", at, expires_at=expires_at)


async def load(world: World, consents: dict[str, list[ConsentRecord]]) -> None:
    """Profiles with these consent histories, in bulk as an import brings them (hundreds are needed below)."""
    at = world.clock.now() - timedelta(days=1)
    async with world.runtime.store.write() as repo:
        await repo.import_subjects([NewSubject(u, at, consents=history) for u, history in consents.items()])


async def load_quokkas(world: World) -> None:
    now = world.clock.now()
    hour = timedelta(hours=1)
    await load(world, {
        "quokka-ana": [],
        "quokka-bob": [],
        "quokka-cid": [record("quokka-cid", "granted", now - 2 * hour)],
        "quokka-dee": [record("quokka-dee", "granted", now - 2 * hour, expires_at=now + 2 * hour)],
        "quokka-eve": [record("quokka-eve", "granted", now - 2 * hour), record("quokka-eve", "withdrawn", now - hour)],
        "quokka-fay": [record("quokka-fay", "denied", now - hour)],
        "quokka-gus": [record("quokka-gus", "granted", now - hour, purpose="profiling")],
    })


async def complete(client: Client, name: str, value: str, ref: Any = PROFILE) -> tuple[list[str], bool]:
    completion = (await client.complete(ref, {"name": name, "value": value})).completion
    return completion.values, bool(completion.has_more)


async def test_a_caller_that_may_read_no_individual_is_offered_nobody(world: World) -> None:
    await load_quokkas(world)
    before = await audit_length(world.runtime)
    # Analytics is for aggregates only; "blind" may act for service and recommendation but see none of their data.
    for caller in ("analyst", "blind"):
        async with connect(world.server(caller)) as c:
            assert await complete(c, "user_id", "") == ([], False)
            assert await complete(c, "user_id", "quokka", PERSONALIZE) == ([], False)
    entries = [e.entry async for e in world.runtime.audit.entries()][before:]
    assert [(e.caller, e.action, e.outcome, e.released) for e in entries] == [
        (caller, "completion:user_id", "error:not_permitted", ()) for caller in ("analyst",) * 2 + ("blind",) * 2]


async def test_a_bound_caller_is_offered_at_most_its_own_subject(world: World) -> None:
    await load_quokkas(world)
    async with connect(world.server("bound")) as c:
        for prefix in ("", "q", "quokka-", "quokka-ana"):
            assert await complete(c, "user_id", prefix) == (["quokka-ana"], False)
        assert await complete(c, "user_id", "quokka-b") == ([], False)
        assert await complete(c, "user_id", "quokka-ana-") == ([], False)
    # Bound to a user who does not consent to its only purpose, it could not read that user, so it is offered no one.
    async with connect(world.server("bound-recommender")) as c:
        assert await complete(c, "user_id", "quokka") == ([], False)
        async with world.runtime.store.write() as repo:
            await repo.add_consent(record("quokka-bob", "granted", world.clock.now()))
        assert await complete(c, "user_id", "quokka") == (["quokka-bob"], False)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_reader_for_recommendation_is_offered_only_users_consenting_to_it_now(world: World,
                                                                                      mode: str) -> None:
    await load_quokkas(world)
    async with connect(world.server("recommender"), mode) as c:
        # Not ana or bob (no record), eve (withdrawn), fay (denied) or gus (consents to profiling only).
        assert await complete(c, "user_id", "quokka") == (["quokka-cid", "quokka-dee"], False)
        assert await complete(c, "user_id", "quokka-d", PERSONALIZE) == (["quokka-dee"], False)
        world.clock.advance(hours=3)  # dee's grant lapses
        assert await complete(c, "user_id", "quokka") == (["quokka-cid"], False)
    # A caller that may read for service (no consent needed) is offered every profile.
    async with connect(world.server("privacy-officer"), mode) as c:
        values, more = await complete(c, "user_id", "quokka")
    assert (len(values), more) == (7, False)


async def test_at_most_twenty_are_offered_however_many_unreadable_users_lie_between(world: World) -> None:
    at = world.clock.now() - timedelta(hours=1)
    # 250 users the recommender may not read sort before the 21 it may: more than one page of the store's query.
    await load(world, {f"ax-{i:03}": [] for i in range(250)}
               | {f"ay-{i:02}": [record(f"ay-{i:02}", "granted", at)] for i in range(21)})
    async with connect(world.server("recommender")) as c:
        assert await complete(c, "user_id", "a") == ([f"ay-{i:02}" for i in range(20)], True)
        assert await complete(c, "user_id", "ay-1") == ([f"ay-{i:02}" for i in range(10, 20)], False)
        async with world.runtime.store.write() as repo:
            await repo.add_consent(record("ay-20", "withdrawn", world.clock.now()))
        # Exactly twenty left: all of them, and nothing more to ask for.
        assert await complete(c, "user_id", "a") == ([f"ay-{i:02}" for i in range(20)], False)
    async with connect(world.server("privacy-officer")) as c:
        assert await complete(c, "user_id", "a") == ([f"ax-{i:03}" for i in range(20)], True)


async def test_each_completion_is_audited_once_without_what_was_typed(world: World) -> None:
    await load_quokkas(world)
    asked = [("recommender", "quokka-c"), ("recommender", "quokka-zz"), ("bound", "quokka-an"),
             ("analyst", "quokka-d"), ("privacy-officer", "quokka-e")]
    before = await audit_length(world.runtime)
    for caller, prefix in asked:
        async with connect(world.server(caller)) as c:
            await complete(c, "user_id", prefix)
            await complete(c, "purpose", "p")  # purposes are the caller's own settings: not about anyone
    entries = [e.entry async for e in world.runtime.audit.entries()][before:]
    # Each completion appends one entry; a purpose completion releases nothing personal.
    assert [(e.caller, e.action, e.released) for e in entries if e.action == "completion:purpose"] == [
        (caller, "completion:purpose", ()) for caller, _ in asked]
    entries = [e for e in entries if e.action != "completion:purpose"]
    assert [(e.caller, e.action, e.subject, e.purpose, e.outcome, e.released) for e in entries] == [
        ("recommender", "completion:user_id", None, None, "ok", ("user_id[]",)),
        ("recommender", "completion:user_id", None, None, "ok", ()),
        ("bound", "completion:user_id", None, None, "ok", ("user_id[]",)),
        ("analyst", "completion:user_id", None, None, "error:not_permitted", ()),
        ("privacy-officer", "completion:user_id", None, None, "ok", ("user_id[]",)),
    ]
    assert not [e for e in entries if "quokka" in audit_text(e)]
