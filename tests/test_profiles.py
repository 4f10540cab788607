"""Profiles, events and consent through an MCP client, on both databases and in both protocol eras."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import ERAS, World

pytestmark = pytest.mark.anyio


async def call(client: Any, tool: str, **arguments: Any) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def seed_user(world: World, user_id: str = "u1", consent: tuple[str, ...] = ()) -> None:
    async with world.client("privacy-officer") as c:
        await call(c, "update_profile", user_id=user_id, create=True, attributes={
            "display_name": "Ana", "email": "ana@example.org", "language": "en-GB", "likes": ["lavender"],
            "city": "Lisbon", "country": "PT"})
        for purpose in consent:
            await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test",
                       evidence="said yes in chat")


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


@pytest.mark.parametrize("mode", ERAS)
async def test_missing_consent_is_an_actionable_tool_error(world: World, mode: str) -> None:
    await seed_user(world)
    async with world.client("shopping-assistant", mode) as c:
        result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "personalization"})
    assert result.is_error
    text = result.content[0].text
    assert "no consent record" in text and "record_consent" in text
    assert "lavender" not in text


async def test_explicit_outranks_inferred(world: World) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("privacy-officer") as c:
        await call(c, "update_profile", user_id="u1", attributes={"likes": ["oud"]}, source="inferred:model-a",
                   confidence=0.9)
        view = await call(c, "get_profile", user_id="u1", purpose="personalization")
    assert view["preferences"]["likes"]["value"] == ["lavender"]
    assert view["preferences"]["likes"]["source"] == "explicit"


async def test_withdrawal_takes_effect_on_the_next_call(world: World) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("shopping-assistant") as c:
        await call(c, "get_profile", user_id="u1", purpose="personalization")
        ledger = await call(c, "record_consent", user_id="u1", purpose="personalization", granted=False,
                            source="chat:shopping-assistant")
        assert ledger["reason"] == "withdrawn" and ledger["allowed"] is False
        result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "personalization"})
    assert result.is_error and "withdrawn" in result.content[0].text


async def test_expired_grant_is_no_consent(world: World) -> None:
    await seed_user(world)
    expiry = (world.clock.now().replace(microsecond=0)).isoformat().replace("+00:00", "Z")
    async with world.client("privacy-officer") as c:
        world.clock.advance(seconds=-60)
        await call(c, "record_consent", user_id="u1", purpose="personalization", granted=True, source="web",
                   expires_at=expiry)
        world.clock.advance(seconds=30)
        assert (await call(c, "check_consent", user_id="u1", purpose="personalization"))["allowed"] is True
        world.clock.advance(seconds=60)
        decision = await call(c, "check_consent", user_id="u1", purpose="personalization")
    assert decision["allowed"] is False and decision["reason"] == "expired"


async def test_sale_opt_out_denies_marketing_until_lifted(world: World) -> None:
    await seed_user(world, consent=("marketing",))
    async with world.client("privacy-officer") as c:
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=False,
                   source="global_privacy_control")
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=True, source="web")
        assert (await call(c, "check_consent", user_id="u1", purpose="marketing"))["reason"] == "sale_opt_out"
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=True,
                   source="global_privacy_control")
        assert (await call(c, "check_consent", user_id="u1", purpose="marketing"))["allowed"] is True


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
        assert result.is_error and "no-such-item" in result.content[0].text
        view = await call(c, "get_profile", user_id="u1", purpose="personalization", sections=["behavior"])
    assert view["behavior"]["event_counts"] == {}
