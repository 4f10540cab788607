"""Opt-outs of sale or sharing through an MCP client: a Global Privacy Control signal or a CCPA do-not-sell-or-share
request, recorded with ``record_privacy_signal`` by any writer, denies marketing over earlier and later grants, is
recorded with where it came from, and shows in check_consent, the consent ledger, privacy_summary and the export."""

from __future__ import annotations

import json

import pytest

from mnky_profiles.domain.purposes import SALE_SIGNAL_PURPOSES

from ..conftest import ERAS, World
from ..support.clients import call, prompt_text, resource_text, tool_text
from ..support.gate import snapshot
from ..support.people import seed_user

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("mode", ERAS)
@pytest.mark.parametrize("signal", ["global_privacy_control", "do_not_sell_or_share"])
async def test_a_signal_denies_marketing_over_every_grant(world: World, mode: str, signal: str) -> None:
    assert SALE_SIGNAL_PURPOSES == ("marketing",)
    await seed_user(world, consent=("marketing", "personalization"))
    async with world.client("privacy-officer", mode) as c:
        await call(c, "get_profile", user_id="u1", purpose="marketing")  # granted before the signal
    # A writer that does not act for marketing may still record the opt-out: saying no is never harder.
    async with world.client("shopping-assistant", mode) as c:
        out = await call(c, "record_privacy_signal", user_id="u1", signal=signal, source="web:checkout",
                         evidence="Sec-GPC: 1")
    assert out["record"] == signal and out["lifted"] is False
    [decision] = out["decisions"]
    assert decision["purpose"] == "marketing" and decision["allowed"] is False
    assert decision["reason"] == "sale_opt_out" and decision["source"] == signal

    async with world.client("privacy-officer", mode) as c:
        # A later ordinary grant does not lift it.
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=True, source="web")
        checked = await call(c, "check_consent", user_id="u1", purpose="marketing")
        assert (checked["allowed"], checked["reason"], checked["source"]) == (False, "sale_opt_out", signal)
        assert signal in checked["explanation"]
        refused = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "marketing"})
        assert refused.is_error and "opted out of sale or sharing" in tool_text(refused)
        assert "ana@example.org" not in tool_text(refused)
        # Other purposes are not sale or sharing and stay as the user chose.
        assert (await call(c, "check_consent", user_id="u1", purpose="personalization"))["allowed"] is True

        ledger = json.loads(resource_text(await c.read_resource("consent://u1")))
        last = ledger["history"][-2]  # the signal, then the ordinary grant after it
        assert (last["purpose"], last["state"], last["source"]) == ("marketing", "withdrawn", signal)
        assert last["evidence"] == "received via web:checkout; Sec-GPC: 1"
        summary = prompt_text(await c.get_prompt("privacy_summary", {"user_id": "u1"}))
    assert f"- marketing: not allowed (User 'u1' opted out of sale or sharing ({signal})" in summary
    assert "- personalization: allowed" in summary

    async with world.runtime.store.read() as repo:
        assert "u1" not in await repo.consenting("marketing", world.clock.now(), ["u1"])
    database = next(h for h in world.runtime.holders if h.holder == "database")
    exported = await database.export("u1")
    assert any(r["source"] == signal and r["evidence"] == "received via web:checkout; Sec-GPC: 1"
               for r in exported["consents"])


async def test_only_the_same_signal_lifts_it(world: World) -> None:
    await seed_user(world, consent=("marketing",))
    async with world.client("support-assistant") as c:
        await call(c, "record_privacy_signal", user_id="u1", signal="global_privacy_control", source="web:home")
        await call(c, "record_privacy_signal", user_id="u1", signal="do_not_sell_or_share",
                   source="email:privacy-office")
    async with world.client("privacy-officer") as c:
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=True,
                   source="global_privacy_control")
        checked = await call(c, "check_consent", user_id="u1", purpose="marketing")
        assert (checked["allowed"], checked["source"]) == (False, "do_not_sell_or_share")
        await call(c, "record_consent", user_id="u1", purpose="marketing", granted=True,
                   source="do_not_sell_or_share")
        assert (await call(c, "check_consent", user_id="u1", purpose="marketing"))["allowed"] is True


@pytest.mark.parametrize(("arguments", "expect"), [
    ({"source": "  "}, "where the request or signal was received"),
    ({"source": "web\x00"}, "NUL"),
    ({"evidence": "e" * 1990}, "evidence must be at most"),
    ({"user_id": "ghost"}, "create=true"),
    ({"signal": "sell_everything"}, "signal"),
])
async def test_bad_signals_are_refused_and_write_nothing(world: World, arguments: dict[str, str],
                                                         expect: str) -> None:
    await seed_user(world, consent=("marketing",))
    before = await snapshot(world.runtime)
    async with world.client("privacy-officer") as c:
        result = await c.call_tool("record_privacy_signal", {
            "user_id": "u1", "signal": "global_privacy_control", "source": "web:checkout", **arguments})
        assert result.is_error and expect in tool_text(result), tool_text(result)
        assert (await call(c, "check_consent", user_id="u1", purpose="marketing"))["allowed"] is True
    assert await snapshot(world.runtime) == before


async def test_a_reader_may_not_record_a_signal(world: World) -> None:
    await seed_user(world, consent=("marketing",))
    async with world.client("insights-agent") as c:
        result = await c.call_tool("record_privacy_signal", {
            "user_id": "u1", "signal": "global_privacy_control", "source": "web:checkout"})
    assert result.is_error and "writer" in tool_text(result)
