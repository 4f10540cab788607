"""Profiles and events through an MCP client, on both databases and in both protocol eras."""

from __future__ import annotations

import pytest

from ..conftest import ERAS, World
from ..support.clients import call, tool_text
from ..support.people import seed_user

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
async def test_profile_round_trip_with_provenance(world: World, mode: str) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("shopping-assistant", mode) as c:
        view = await call(c, "get_profile", user_id="u1", purpose="personalization")
    assert view["preferences"]["likes"]["value"] == ["lavender"]
    assert view["preferences"]["likes"]["source"] == "explicit"
    assert view["location"]["country"]["value"] == "PT"
    # Precise location, contact and name are not for personalization.
    assert "city" not in view["location"]
    assert "email" not in view["identity"]
    reasons = {w["field"]: w["reason"] for w in view["withheld"]}
    assert reasons["location.city"] == "purpose_not_compatible"
    assert reasons["identity.email"] in {"purpose_not_compatible", "caller_not_permitted"}


async def test_explicit_outranks_inferred(world: World) -> None:
    await seed_user(world, consent=("personalization", "profiling"))  # the model's inference is profiling
    async with world.client("privacy-officer") as c:
        await call(c, "update_profile", user_id="u1", attributes={"likes": ["oud"]}, source="inferred:model-a",
                   confidence=0.9)
        view = await call(c, "get_profile", user_id="u1", purpose="personalization")
    assert view["preferences"]["likes"]["value"] == ["lavender"]
    assert view["preferences"]["likes"]["source"] == "explicit"


async def test_events_feed_the_behaviour_summary(world: World) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("shopping-assistant") as c:
        await call(c, "record_event", user_id="u1", event_type="view", item_id="candle-lavender")
        out = await call(c, "record_events", events=[
            {"user_id": "u1", "event_type": "purchase", "item_id": "candle-lavender", "properties": {"quantity": 1}},
            {"user_id": "u1", "event_type": "rating", "item_id": "candle-lavender", "properties": {"rating": 5}},
        ])
        assert out["recorded"] == 2 and len(out["event_ids"]) == 2
        view = await call(c, "get_profile", user_id="u1", purpose="personalization", sections=["behavior"])
    assert view["behavior"]["event_counts"] == {"view": 1, "purchase": 1, "rating": 1}
    assert view["behavior"]["purchases"] == 1
    assert view["behavior"]["recent_items"] == ["candle-lavender"]


async def test_a_rejected_batch_writes_nothing(world: World) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("shopping-assistant") as c:
        result = await c.call_tool("record_events", {"events": [
            {"user_id": "u1", "event_type": "view", "item_id": "candle-lavender"},
            {"user_id": "u1", "event_type": "view", "item_id": "no-such-item"},
        ]})
        assert result.is_error and "no-such-item" in tool_text(result)
        view = await call(c, "get_profile", user_id="u1", purpose="personalization", sections=["behavior"])
    assert view["behavior"]["event_counts"] == {}
