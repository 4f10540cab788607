"""Lawful collection through an MCP client, on both databases.

Every event type and writable attribute is collected for purposes, published in ``schema://profile``. A write
without a basis (the caller acts for the purpose and may see the data, the user consents to it or the contract
covers it) is a tool error naming the consent to ask for, and stores nothing; learning uses only the signals of
users who consent to it; a caller records a grant only for a purpose it acts for. The published table is tried
row by row against what the server enforces.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mnky_profiles.domain.purposes import CONSENT_PURPOSES, PURPOSE_NAMES

from ..conftest import FakeClock, World, open_world
from ..support.clients import call, connect, resource_text, tool_text
from ..support.gate import caller_from_settings, newest_entry, snapshot

pytestmark = pytest.mark.anyio

OFFICER = {"purposes": list(PURPOSE_NAMES), "categories": ["*"], "roles": ["reader", "writer", "privacy_officer"],
           "identifiers": True}
EVIDENCE = "Shown the consent text for this purpose; the user replied 'yes, I agree'."
VIEW = {"user_id": "u1", "event_type": "view", "item_id": "candle-lavender"}
PURCHASE = {"user_id": "u1", "event_type": "purchase", "item_id": "candle-lavender", "properties": {"quantity": 1}}
MOOD = {"user_id": "u1", "event_type": "mood_check_in", "properties": {"mood": "calm", "intensity": 2}}


async def person(world: World, user_id: str = "u1", grants: tuple[str, ...] | set[str] = ()) -> None:
    """A profile holding a name only (the contract's), and the user's grants, recorded by the privacy officer."""
    async with connect(world.server("privacy-officer")) as c:
        await call(c, "update_profile", user_id=user_id, create=True, attributes={"display_name": "Ana"})
        for purpose in sorted(grants):
            await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test",
                       evidence=EVIDENCE)


async def officer(world: World, tool: str, **arguments: Any) -> dict[str, Any]:
    async with connect(world.server("privacy-officer")) as c:
        return await call(c, tool, **arguments)


async def refused(world: World, client: Client, tool: str, arguments: dict[str, Any], code: str) -> str:
    """The call is a tool error with this code, and no table changed (the audit entry aside); its text."""
    before = await snapshot(world.runtime)
    result = await client.call_tool(tool, arguments)
    text = tool_text(result)
    assert result.is_error, (tool, arguments, result.structured_content)
    assert await snapshot(world.runtime) == before, (tool, arguments, text)
    assert (await newest_entry(world.runtime)).outcome == f"error:{code}", text
    return text


async def stored_events(world: World, user_id: str = "u1") -> dict[str, int]:
    async with world.runtime.store.read() as repo:
        return await repo.event_counts(user_id)


async def implicit(world: World, user_id: str = "u1") -> dict[str, int]:
    """The user's implicit preference tokens and how many signals stand behind each."""
    async with world.runtime.store.read() as repo:
        return {p.token: p.evidence_count for p in await repo.preferences(user_id) if p.source == "implicit"}


# -- events --------------------------------------------------------------------------------------------------

async def test_an_event_without_a_basis_is_refused_and_nothing_is_stored(world: World) -> None:
    await person(world)
    async with connect(world.server("shopping-assistant")) as c:
        text = await refused(world, c, "record_event", VIEW, "consent_required")
        assert "has not consented to 'personalization'" in text and "Nothing was stored" in text
        assert "record_consent(user_id='u1', purpose='personalization', granted=true, source=...)" in text
        # A batch is all or none: the purchase, which the contract covers, is not stored either.
        text = await refused(world, c, "record_events", {"events": [PURCHASE, VIEW]}, "consent_required")
        assert text.startswith("Error executing tool record_events: events[1]: User 'u1'"), text
        assert "all or none" in next(t.description or "" for t in (await c.list_tools()).tools
                                     if t.name == "record_events")
        assert await stored_events(world) == {}
        await officer(world, "record_consent", user_id="u1", purpose="personalization", granted=True, source="web")
        out = await call(c, "record_events", events=[PURCHASE, VIEW])
    assert out["recorded"] == 2 and out["learning"] == "applied"
    assert await stored_events(world) == {"purchase": 1, "view": 1}


async def test_a_mood_check_in_needs_explicit_wellbeing_consent_and_a_caller_that_may_see_emotions(
        world: World) -> None:
    await person(world, grants=("personalization",))
    async with connect(world.server("wellbeing-assistant")) as c:
        text = await refused(world, c, "record_event", MOOD, "consent_required")
    assert "has not consented to 'wellbeing'" in text
    assert "purpose='wellbeing', granted=true, source=..., evidence=...)" in text and "explicit consent" in text

    await officer(world, "record_consent", user_id="u1", purpose="wellbeing", granted=True, source="app",
                  evidence=EVIDENCE)
    async with connect(world.server("shopping-assistant")) as c:  # it may not see user.emotional
        text = await refused(world, c, "record_event", MOOD, "not_permitted")
        assert "may not store a 'mood_check_in' event: it is user.emotional data" in text
        text = await refused(world, c, "record_events", {"events": [VIEW, MOOD]}, "not_permitted")
        assert "events[1]: " in text
    assert await stored_events(world) == {}

    async with connect(world.server("wellbeing-assistant")) as c:
        await call(c, "record_event", **MOOD)
        view = await call(c, "get_profile", user_id="u1", purpose="wellbeing", sections=["emotional"])
    assert view["emotional"]["check_ins"] == 1 and view["emotional"]["last_mood"] == "calm"


CALLERS = {
    "privacy-officer": OFFICER,
    "tailor": {"purposes": ["service", "personalization"],
               "categories": ["user.behavior", "user.preference", "user.consent"], "roles": ["reader", "writer"]},
    "counter": {"purposes": ["service", "analytics"], "categories": ["user.behavior"], "roles": ["reader", "writer"]},
    "dpo": {"purposes": ["service"], "categories": ["user.consent"], "roles": ["reader", "writer", "privacy_officer"]},
    "probe": {"purposes": ["service"], "categories": [], "roles": []},
}


@pytest.fixture
async def callers_world(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with open_world(backend, tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as world:
        yield world


async def test_a_caller_stores_only_for_a_purpose_it_acts_for_and_the_user_consents_to(callers_world: World) -> None:
    world = callers_world
    await person(world, grants=("profiling",))
    async with connect(world.server("counter")) as c:
        text = await refused(world, c, "record_event", VIEW, "not_permitted")
    assert ("may not store a 'view' event: it is collected for 'personalization' or 'profiling', and the caller "
            "acts for none of them") in text
    # The tailor acts for personalization, the user consents to profiling: no purpose has both, so no basis.
    async with connect(world.server("tailor")) as c:
        text = await refused(world, c, "record_event", VIEW, "consent_required")
        assert "purpose='personalization'" in text
        await officer(world, "record_consent", user_id="u1", purpose="personalization", granted=True, source="web")
        await call(c, "record_event", **VIEW)
    assert await stored_events(world) == {"view": 1}


# -- attributes ----------------------------------------------------------------------------------------------

async def test_an_attribute_without_a_basis_is_refused_and_nothing_is_stored(world: World) -> None:
    await person(world)
    async with connect(world.server("privacy-officer")) as c:
        # The contract's attributes need no consent: name, contact, language, communication, delivery address.
        await call(c, "update_profile", user_id="u1", attributes={
            "email": "ana@example.org", "language": "pt-PT", "preferred_channel": "email", "city": "Porto"})
        text = await refused(world, c, "update_profile", {"user_id": "u1", "attributes": {
            "language": "en-GB", "likes": ["oud"]}}, "consent_required")
        assert "has not consented to 'personalization', which attribute 'likes' is collected for" in text
        assert "record_consent(user_id='u1', purpose='personalization'" in text
        # A new profile whose data needs consent is not created at all.
        text = await refused(world, c, "update_profile", {"user_id": "u2", "create": True, "attributes": {
            "display_name": "Ben", "age_band": "25-34"}}, "consent_required")
        assert "attribute 'age_band'" in text

        await call(c, "record_consent", user_id="u1", purpose="personalization", granted=True, source="web")
        text = await refused(world, c, "update_profile", {"user_id": "u1", "attributes": {"interests": ["yoga"]}},
                             "consent_required")
        assert "'profiling', which attribute 'interests' is collected for" in text
        # What a model inferred is profiling, whatever the field.
        text = await refused(world, c, "update_profile", {"user_id": "u1", "attributes": {"likes": ["oud"]},
                                                          "source": "inferred:taste-model"}, "consent_required")
        assert "'profiling', which an inferred value (source 'inferred:taste-model') is collected for" in text
        await call(c, "update_profile", user_id="u1", attributes={"likes": ["oud"]})
        await call(c, "record_consent", user_id="u1", purpose="profiling", granted=True, source="web")
        await call(c, "update_profile", user_id="u1", attributes={"interests": ["yoga"], "likes": ["vanilla"]},
                   source="inferred:taste-model")
    async with world.runtime.store.read() as repo:
        stored = {(a.field, a.source): a.value for a in await repo.attributes("u1")}
        assert not await repo.profile_exists("u2")
    assert stored[("language", "explicit")] == "pt-PT"
    assert stored[("likes", "explicit")] == ["oud"] and stored[("likes", "inferred:taste-model")] == ["vanilla"]


async def test_a_caller_may_not_store_what_it_may_not_see(world: World) -> None:
    """The support assistant acts for service but is not configured to see stated preferences or behaviour."""
    await person(world, grants=("personalization",))
    async with connect(world.server("support-assistant")) as c:
        text = await refused(world, c, "update_profile", {"user_id": "u1", "attributes": {"likes": ["oud"]}},
                             "not_permitted")
        assert "may not store attribute 'likes': it is user.preference.stated data" in text
        await refused(world, c, "record_event", PURCHASE, "not_permitted")
        await call(c, "update_profile", user_id="u1", attributes={"email": "ana@example.org"})


# -- learning ------------------------------------------------------------------------------------------------

async def test_a_purchase_is_kept_for_the_contract_but_learned_from_only_with_consent(world: World) -> None:
    await person(world)
    async with connect(world.server("shopping-assistant")) as c:
        first = await call(c, "record_event", **PURCHASE)
        assert first["learning"] == "none"
        assert await stored_events(world) == {"purchase": 1} and await implicit(world) == {}
        await officer(world, "record_consent", user_id="u1", purpose="personalization", granted=True, source="web")
        second = await call(c, "record_event", **PURCHASE)
    assert second["learning"] == "applied"
    assert await implicit(world) == {"item:candle-lavender": 1, "type:candle": 1, "note:lavender": 1,
                                     "note:vanilla": 1, "family:floral": 1, "mood:calm": 1}
    # Relearning reads the stored history for the consent that stands now: both purchases, then none.
    runs = world.runtime.usecases.learning
    await runs.relearn()
    assert set((await implicit(world)).values()) == {2}
    await officer(world, "record_consent", user_id="u1", purpose="personalization", granted=False, source="web")
    await runs.relearn()
    assert await implicit(world) == {}


async def test_batch_learning_applies_only_the_signals_of_users_who_consent_when_it_runs(
        backend: str, tmp_path: Path, clock: FakeClock) -> None:
    async with open_world(backend, tmp_path, clock, user_profiling={"update_frequency": "batch"}) as world:
        await person(world, "keen", ("personalization",))
        await person(world, "leaving", ("profiling",))
        await person(world, "never")
        async with connect(world.server("privacy-officer")) as c:
            for user in ("keen", "leaving", "never"):
                out = await call(c, "record_event", **{**PURCHASE, "user_id": user})
                assert out["learning"] == ("none" if user == "never" else "queued"), user
            await call(c, "record_consent", user_id="leaving", purpose="profiling", granted=False, source="web")
        assert await world.runtime.usecases.learning.learn() == 1
        async with world.runtime.store.read() as repo:
            assert await repo.pending_events(10) == []
        assert await implicit(world, "keen") and not await implicit(world, "leaving")
        assert not await implicit(world, "never")
        assert await stored_events(world, "never") == {"purchase": 1}


# -- recording consent ---------------------------------------------------------------------------------------

async def test_a_caller_records_a_grant_only_for_a_purpose_it_acts_for(callers_world: World) -> None:
    world = callers_world
    await person(world)
    grant = {"user_id": "u1", "purpose": "wellbeing", "granted": True, "source": "chat:tailor", "evidence": EVIDENCE}
    async with connect(world.server("tailor")) as c:
        text = await refused(world, c, "record_consent", grant, "not_permitted")
        assert "may not record a grant of 'wellbeing': it does not act for that purpose" in text
        assert "Its purposes: personalization, service" in text
        await refused(world, c, "record_consent", {**grant, "purpose": "profiling"}, "not_permitted")
        # Saying no is recorded wherever the user says it.
        denied = await call(c, "record_consent", user_id="u1", purpose="marketing", granted=False, source="chat:tailor")
        assert denied["reason"] == "denied"
        granted = await call(c, "record_consent", user_id="u1", purpose="personalization", granted=True,
                             source="chat:tailor")
        assert granted["allowed"] is True
    # A privacy officer records any purpose's choice, made through the privacy office.
    async with connect(world.server("dpo")) as c:
        await call(c, "record_consent", **{**grant, "source": "email:privacy-office"})
    ledger = await officer(world, "check_consent", user_id="u1", purpose="wellbeing")
    assert ledger["allowed"] is True and ledger["source"] == "email:privacy-office"


# -- the published table is the enforced one ------------------------------------------------------------------

# Valid arguments per event type; a type added without one here fails the table test until it has one.
EVENT_SAMPLES: dict[str, dict[str, Any]] = {
    "view": {"item_id": "candle-lavender"}, "click": {"item_id": "candle-lavender"},
    "add_to_cart": {"item_id": "candle-lavender"}, "purchase": {"item_id": "candle-lavender"},
    "rating": {"item_id": "candle-lavender", "properties": {"rating": 5}}, "return": {"item_id": "perfume-oud"},
    "search": {"properties": {"query": "lavender candle"}},
    "dwell": {"item_id": "bath-citrus", "properties": {"seconds": 90}},
    "feature_use": {"properties": {"feature": "scent-quiz"}}, "session": {"properties": {"channel": "web"}},
    "mood_check_in": {"properties": {"mood": "calm"}},
}


def sample_value(field: dict[str, Any]) -> Any:
    return {"text": "PT", "choice": (field["choices"] or ["x"])[0], "tags": ["sample"]}[field["kind"]]


class Table:
    """Tries one published row: a caller acting for ``purposes`` (and service, which the tools run under) and
    seeing ``categories``, writing for a fresh user who granted ``grants``."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.n = 0

    async def attempt(self, tool: str, arguments: dict[str, Any], purposes: list[str], categories: list[str],
                      grants: set[str]) -> tuple[Client, dict[str, Any]]:
        self.n += 1
        user_id = f"row-{self.n:04d}"
        await person(self.world, user_id, grants)
        self.world.runtime.callers["probe"] = caller_from_settings(
            "probe", purposes=sorted({"service", *purposes}), categories=categories, roles=["reader", "writer"])
        return self.world.server("probe"), {**arguments, "user_id": user_id}

    async def stores(self, tool: str, arguments: dict[str, Any], purposes: list[str], categories: list[str],
                     grants: set[str]) -> dict[str, Any]:
        server, args = await self.attempt(tool, arguments, purposes, categories, grants)
        async with connect(server) as c:
            return await call(c, tool, **args)

    async def refuses(self, tool: str, arguments: dict[str, Any], purposes: list[str], categories: list[str],
                      grants: set[str], code: str) -> str:
        server, args = await self.attempt(tool, arguments, purposes, categories, grants)
        async with connect(server) as c:
            return await refused(self.world, c, tool, args, code)

    async def row(self, tool: str, arguments: dict[str, Any], category: str, collected: dict[str, Any],
                  extra: list[str] | None = None) -> None:
        """Each collection purpose is a basis on its own; without it (other consents do not count) the write is
        refused; so it is for a caller that may not see the category."""
        purposes, contract = collected["purposes"], collected["basis"] == "contract"
        seen = [category, *(extra or [])]
        assert contract == (purposes == ["service"]), collected
        for purpose in purposes:
            await self.stores(tool, arguments, [purpose], seen, set() if contract else {purpose})
        if not contract:
            others = set(CONSENT_PURPOSES) - set(purposes)
            text = await self.refuses(tool, arguments, purposes, seen, others, "consent_required")
            assert f"purpose={purposes[0]!r}" in text, text
        await self.refuses(tool, arguments, purposes, [c for c in seen if c != category],
                           set() if contract else set(purposes), "not_permitted")


async def test_the_published_table_is_the_one_enforced(callers_world: World) -> None:
    world = callers_world
    async with connect(world.server("privacy-officer")) as c:
        catalog = json.loads(resource_text(await c.read_resource("schema://profile")))
    table = Table(world)
    events = {e["name"]: e for e in catalog["events"]}
    assert set(events) == set(EVENT_SAMPLES)
    for name, row in events.items():
        arguments = {"event_type": name, **EVENT_SAMPLES[name]}
        await table.row("record_event", arguments, row["category"], row["collected"])
        # Learned from only with consent to what it is learned for; a row without it gives no preference.
        basis = set() if row["collected"]["basis"] == "contract" else set(row["collected"]["purposes"])
        learned = row.get("learned")
        for purpose in (learned["purposes"] if learned else ["personalization", "profiling"]):
            out = await table.stores("record_event", arguments, row["collected"]["purposes"], [row["category"]],
                                     basis | {purpose})
            assert out["learning"] == "applied", (name, purpose)
            assert bool(await implicit(world, f"row-{table.n:04d}")) == bool(learned), (name, purpose)
        if learned and basis.isdisjoint(learned["purposes"]):
            out = await table.stores("record_event", arguments, row["collected"]["purposes"], [row["category"]],
                                     basis)
            assert out["learning"] == "none" and not await implicit(world, f"row-{table.n:04d}"), name

    writable = [f for f in catalog["fields"] if f["kind"] != "derived"]
    assert all(f.get("collected") is None for f in catalog["fields"] if f["kind"] == "derived")
    for field in writable:
        arguments = {"attributes": {field["name"]: sample_value(field)}}
        await table.row("update_profile", arguments, field["category"], field["collected"])

    # An inferred value needs the inference's purposes on top of its field's own collection.
    inferred = catalog["inferred"]
    field = next(f for f in writable if f["collected"]["basis"] == "contract")
    arguments = {"attributes": {field["name"]: sample_value(field)}, "source": "inferred:sample-model"}
    await table.row("update_profile", arguments, "user.inferred", inferred, extra=[field["category"]])
