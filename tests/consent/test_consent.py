"""The consent ledger through an MCP client: no record means no consent, a withdrawal or an expiry takes effect at
once, and a sale opt-out is sticky until its source lifts it."""

from __future__ import annotations

import pytest

from ..conftest import ERAS, World
from ..support.clients import call, tool_text
from ..support.people import seed_user

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
async def test_missing_consent_is_an_actionable_tool_error(world: World, mode: str) -> None:
    await seed_user(world)
    async with world.client("shopping-assistant", mode) as c:
        result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "personalization"})
    assert result.is_error
    text = tool_text(result)
    assert "no consent record" in text and "record_consent" in text
    assert "lavender" not in text


async def test_withdrawal_takes_effect_on_the_next_call(world: World) -> None:
    await seed_user(world, consent=("personalization",))
    async with world.client("shopping-assistant") as c:
        await call(c, "get_profile", user_id="u1", purpose="personalization")
        ledger = await call(c, "record_consent", user_id="u1", purpose="personalization", granted=False,
                            source="chat:shopping-assistant")
        assert ledger["reason"] == "withdrawn" and ledger["allowed"] is False
        result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "personalization"})
    assert result.is_error and "withdrawn" in tool_text(result)


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
