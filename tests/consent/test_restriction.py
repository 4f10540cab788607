"""Restriction of processing and objection to profiling through an MCP client: each is a ledger record with where it
was received, standing over every grant until the privacy officer lifts it. A restriction keeps the data but stops
learning, similarity (as query and as result), recommendations and marketing; an objection takes the user out of
similarity and the shared model, as query and as result."""

from __future__ import annotations

from typing import Any

import pytest

from mnky_profiles.usecases.item_model import digests

from ..conftest import World
from ..support.clients import call, prompt_text, tool_text
from ..support.gate import snapshot

pytestmark = pytest.mark.anyio

FANS = ("fan-1", "fan-2", "fan-3")


async def fans(world: World) -> None:
    async with world.client("privacy-officer") as c:
        for user in FANS:
            await call(c, "update_profile", user_id=user, create=True, attributes={"language": "en"})
            for purpose in ("personalization", "recommendation", "profiling", "marketing"):
                await call(c, "record_consent", user_id=user, purpose=purpose, granted=True, source="test")
            await call(c, "record_event", user_id=user, event_type="purchase", item_id="candle-lavender")
    await world.runtime.usecases.model.fit()


def learned_from(world: World, user: str) -> bool:
    model = world.runtime.usecases.model.current
    assert model is not None
    return model.learned_from(int(digests([user])[0]))


async def neighbours(c: Any, user: str) -> int:
    found = await call(c, "find_similar_users", user_id=user, purpose="profiling", min_similarity=0.5)
    return len(found["neighbours"])


async def preferences_of(world: World, user: str) -> list[Any]:
    return [row for row in (await snapshot(world.runtime))["preferences"] if row[0] == user]


async def test_restriction_freezes_processing_and_keeps_the_data(world: World) -> None:
    await fans(world)
    assert learned_from(world, "fan-1") and set(await world.runtime.index.fetch(["fan-1"])) == {"fan-1"}
    kept = await preferences_of(world, "fan-1")
    assert kept
    async with world.client("support-assistant") as c:  # any writer takes the request
        out = await call(c, "restrict_processing", user_id="fan-1", source="chat:support-assistant",
                         evidence="please stop using my data until you have checked it")
    assert out["record"] == "restriction" and out["lifted"] is False
    assert {d["purpose"] for d in out["decisions"]} == {
        "personalization", "recommendation", "profiling", "wellbeing", "analytics", "marketing"}
    assert all(d["allowed"] is False and d["reason"] == "restricted" for d in out["decisions"])
    assert await world.runtime.index.fetch(["fan-1"]) == {} and not learned_from(world, "fan-1")

    async with world.client("privacy-officer") as c:
        for tool, purpose in (("find_similar_users", "profiling"), ("recommend", "recommendation"),
                              ("get_preferences", "personalization"), ("get_profile", "marketing")):
            refused = await c.call_tool(tool, {"user_id": "fan-1", "purpose": purpose})
            assert refused.is_error and "restricted the processing" in tool_text(refused), (tool, tool_text(refused))
        assert await neighbours(c, "fan-2") == 1  # fan-3 only: fan-1 is no one's neighbour now
        # A later grant does not lift it; nothing new is learned; what is stored stays.
        await call(c, "record_consent", user_id="fan-1", purpose="personalization", granted=True, source="web")
        assert (await call(c, "check_consent", user_id="fan-1", purpose="personalization"))["reason"] == "restricted"
        bought = await call(c, "record_event", user_id="fan-1", event_type="purchase", item_id="perfume-oud")
        assert bought["learning"] == "none"
        assert (await c.call_tool("record_event", {"user_id": "fan-1", "event_type": "view",
                                                   "item_id": "bath-citrus"})).is_error
        assert await preferences_of(world, "fan-1") == kept
        await call(c, "get_profile", user_id="fan-1", purpose="service")  # the contract still runs
        summary = prompt_text(await c.get_prompt("privacy_summary", {"user_id": "fan-1"}))
        assert "- profiling: not allowed (User 'fan-1' restricted the processing of their data" in summary

    # Only the privacy officer lifts it; then the earlier grants count again.
    async with world.client("support-assistant") as c:
        before = await snapshot(world.runtime)
        refused = await c.call_tool("restrict_processing", {"user_id": "fan-1", "source": "chat", "lift": True})
        assert refused.is_error and "privacy_officer" in tool_text(refused)
        assert await snapshot(world.runtime) == before
    async with world.client("privacy-officer") as c:
        out = await call(c, "restrict_processing", user_id="fan-1", source="email:privacy-office", lift=True,
                         evidence="records checked and corrected")
        assert out["lifted"] is True
        # What the user granted counts again; what they never granted stays without consent.
        assert {d["purpose"]: d["reason"] for d in out["decisions"]} == {
            "personalization": "granted", "recommendation": "granted", "profiling": "granted",
            "marketing": "granted", "wellbeing": "no_record", "analytics": "no_record"}
        assert await neighbours(c, "fan-2") == 2
    assert set(await world.runtime.index.fetch(["fan-1"])) == {"fan-1"}


async def test_objection_takes_the_user_out_of_profiling_only(world: World) -> None:
    await fans(world)
    async with world.client("shopping-assistant") as c:
        out = await call(c, "object_to_profiling", user_id="fan-2", source="web:privacy-page")
    [decision] = out["decisions"]
    assert (decision["purpose"], decision["allowed"], decision["reason"]) == ("profiling", False, "objected")
    assert decision["source"] == "objection"
    assert await world.runtime.index.fetch(["fan-2"]) == {} and not learned_from(world, "fan-2")
    async with world.client("privacy-officer") as c:
        refused = await c.call_tool("find_similar_users", {"user_id": "fan-2", "purpose": "profiling"})
        assert refused.is_error and "objected to profiling" in tool_text(refused)
        assert await neighbours(c, "fan-1") == 1  # not fan-2, as a result either
        await call(c, "record_consent", user_id="fan-2", purpose="profiling", granted=True, source="web")
        assert (await call(c, "check_consent", user_id="fan-2", purpose="profiling"))["reason"] == "objected"
        await call(c, "get_preferences", user_id="fan-2", purpose="personalization")  # not profiling: still allowed
        await world.runtime.usecases.model.fit()
        assert not learned_from(world, "fan-2")  # a refit leaves them out too
        ledger = await call(c, "record_consent", user_id="fan-2", purpose="marketing", granted=True, source="web")
        assert ledger["allowed"] is True
        summary = prompt_text(await c.get_prompt("privacy_summary", {"user_id": "fan-2"}))
        assert "- profiling: not allowed (User 'fan-2' objected to profiling" in summary
        out = await call(c, "object_to_profiling", user_id="fan-2", source="email:privacy-office", lift=True)
        assert out["decisions"][0]["allowed"] is True
        assert await neighbours(c, "fan-1") == 2


async def test_the_reserved_sources_are_refused_in_record_consent(world: World) -> None:
    await fans(world)
    before = await snapshot(world.runtime)
    async with world.client("privacy-officer") as c:
        for source in ("restriction", "objection"):
            result = await c.call_tool("record_consent", {"user_id": "fan-1", "purpose": "profiling",
                                                          "granted": True, "source": source})
            assert result.is_error and "object_to_profiling" in tool_text(result)
    assert await snapshot(world.runtime) == before
