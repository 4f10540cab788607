"""Derived values carry the categories of what they were derived from, and the gate releases them by those.

Each test is a finding an adversarial caller made against the privacy promises: a recommendation reason that cited
purchases to a caller that may not see behaviour, stated likes in get_preferences for a caller that may only see
learned ones, an aggregate over one person, and a withdrawn user's history still shaping others' recommendations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from ..conftest import FakeClock, World, open_world
from ..support.clients import call

EVERYTHING = ["service", "personalization", "recommendation", "profiling", "wellbeing", "analytics", "marketing"]
CALLERS: dict[str, Any] = {
    "privacy-officer": {"purposes": EVERYTHING, "categories": ["*"], "roles": ["reader", "writer", "privacy_officer"],
                        "identifiers": True},
    # may see preferences but not behaviour, for purposes that could use both
    "taste-only": {"purposes": ["recommendation", "marketing", "personalization"], "categories": ["user.preference"],
                   "default_purpose": "recommendation"},
    "learned-only": {"purposes": ["personalization"], "categories": ["user.preference.learned"],
                     "default_purpose": "personalization"},
    # may see everything a recommendation uses; marketing may not use behaviour
    "marketer": {"purposes": ["recommendation", "marketing"], "categories": ["user.preference", "user.behavior"],
                 "default_purpose": "recommendation"},
}
PURPOSES = ("personalization", "recommendation", "profiling", "marketing")

pytestmark = pytest.mark.anyio


async def person(c: Client, user_id: str, *, likes: list[str] | None = None, bought: tuple[str, ...] = ()) -> None:
    await call(c, "update_profile", user_id=user_id, create=True, attributes={"language": "en"})
    for purpose in PURPOSES:
        await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test")
    if likes:  # stated likes are collected for personalization: after the consent to it
        await call(c, "update_profile", user_id=user_id, attributes={"likes": likes})
    for item in bought:
        await call(c, "record_event", user_id=user_id, event_type="purchase", item_id=item)


def texts(view: dict[str, Any]) -> list[str]:
    return [r["text"] for item in view.get("items") or [] for r in item["reasons"]]


def withheld(view: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(w["field"], w["category"], w["reason"]) for w in view["withheld"]}


@pytest.fixture
async def lineage_world(backend: str, tmp_path: Path, clock: FakeClock) -> Any:
    async with open_world(backend, tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as w:
        yield w


async def _buyers(world: World, n: int) -> None:
    """``n`` people who bought the oud perfume and the lavender candle together, and the user u1 who bought oud."""
    async with world.client("privacy-officer") as c:
        for k in range(n):
            await person(c, f"pair-{k}", bought=("perfume-oud", "candle-lavender"))
        await person(c, "u1", likes=["vanilla"], bought=("perfume-oud",))
    await world.runtime.usecases.model.fit()


async def test_a_reason_citing_purchases_never_reaches_a_caller_that_may_not_see_behaviour(
        lineage_world: World) -> None:
    await _buyers(lineage_world, 6)
    async with lineage_world.client("privacy-officer") as c:
        full = await call(c, "recommend", user_id="u1", purpose="recommendation", repurchase=True)
    assert "Often chosen by people who also chose Midnight Oud Eau de Parfum." in texts(full)
    assert "You bought it before." in texts(full)
    async with lineage_world.client("taste-only") as c:
        taste = await call(c, "recommend", user_id="u1", purpose="recommendation", repurchase=True)
    assert not any("chose" in t or "bought" in t for t in texts(taste)), texts(taste)
    assert all("user.behavior" not in i["lineage"] for i in taste["items"])
    assert ("input:item_history", "user.behavior", "caller_not_permitted") in withheld(taste)
    assert ("input:purchases_returns_ratings", "user.behavior", "caller_not_permitted") in withheld(taste)
    assert any("vanilla" in t for t in texts(taste))  # what it may use still explains the list
    # A caller that may see behaviour, for a purpose that may not use it: the same, for the purpose's reason.
    async with lineage_world.client("marketer") as c:
        marketing = await call(c, "recommend", user_id="u1", purpose="marketing", repurchase=True)
    assert not any("chose" in t or "bought" in t for t in texts(marketing))
    assert ("input:item_history", "user.behavior", "purpose_not_compatible") in withheld(marketing)
    # Behaviour is not used at all, not only not cited: the bought item is not left out of the list for it.
    async with lineage_world.client("taste-only") as c:
        plain = await call(c, "recommend", user_id="u1", purpose="recommendation", limit=10)
    assert "perfume-oud" in [i["item_id"] for i in plain["items"]]


async def test_get_preferences_shows_stated_likes_only_to_callers_that_may_see_them(lineage_world: World) -> None:
    async with lineage_world.client("privacy-officer") as c:
        await person(c, "u1", likes=["vanilla"])
        await call(c, "record_event", user_id="u1", event_type="view", item_id="perfume-oud")
        full = await call(c, "get_preferences", user_id="u1", purpose="personalization")
    sources = {p["source"] for p in full["preferences"]}
    assert sources == {"explicit", "implicit"}
    assert {p["source"]: p["lineage"] for p in full["preferences"]}["explicit"] == ["user.preference.stated"]
    async with lineage_world.client("learned-only") as c:
        learned = await call(c, "get_preferences", user_id="u1", purpose="personalization")
    assert learned["preferences"] and {p["source"] for p in learned["preferences"]} == {"implicit"}
    assert all(p["lineage"] == ["user.preference.learned"] for p in learned["preferences"])
    assert ("input:stated_preferences", "user.preference.stated", "caller_not_permitted") in withheld(learned)


async def test_no_aggregate_rests_on_fewer_than_the_minimum_group(lineage_world: World) -> None:
    await _buyers(lineage_world, 3)  # with u1, four people chose oud; three chose oud and the candle together
    model = lineage_world.runtime.usecases.model.current
    assert model is not None and not model.chosen_together("perfume-oud", "candle-lavender")
    assert model.weights[model.index["perfume-oud"], model.index["candle-lavender"]] == 0
    assert not model.popularity.any()  # no item was chosen by five
    async with lineage_world.client("privacy-officer") as c:
        view = await call(c, "recommend", user_id="u1", purpose="recommendation")
        await person(c, "new")
        cold = await call(c, "recommend", user_id="new", purpose="recommendation")
    assert not any("chose" in t for t in texts(view))
    assert cold["fallback"] == "popularity"
    assert all(r["lineage"] == [] and "Too few customers" in r["text"] for i in cold["items"] for r in i["reasons"])
    assert all(i["score"] == 0 for i in cold["items"])
    # The fifth pair makes a group: the reason and the share appear.
    await _buyers(lineage_world, 5)
    async with lineage_world.client("privacy-officer") as c:
        view = await call(c, "recommend", user_id="u1", purpose="recommendation")
    assert "Often chosen by people who also chose Midnight Oud Eau de Parfum." in texts(view)


async def test_withdrawal_reaches_the_shared_model_within_the_call(lineage_world: World) -> None:
    await _buyers(lineage_world, 5)  # five pairs: exactly the minimum group
    runtime = lineage_world.runtime
    before = runtime.usecases.model.current
    assert before is not None and before.chosen_together("perfume-oud", "candle-lavender")
    async with lineage_world.client("privacy-officer") as c:
        assert "Often chosen by people who also chose Midnight Oud Eau de Parfum." in texts(
            await call(c, "recommend", user_id="u1", purpose="recommendation"))
        await call(c, "record_consent", user_id="pair-0", purpose="profiling", granted=False, source="test")
        after = await call(c, "recommend", user_id="u1", purpose="recommendation")
    assert not any("chose" in t for t in texts(after))  # four pairs left: below the minimum group
    model = runtime.usecases.model.current
    assert model is not None and model.users == before.users - 1
    assert not await runtime.usecases.model.held("pair-0")
    # What is kept between runs is the model without them: a restart does not bring their history back.
    assert runtime.usecases.model.files is not None
    reloaded = type(runtime.usecases.model)(runtime.store, runtime.usecases.model.catalog, runtime.clock,
                                            half_life_days=90, files=runtime.usecases.model.files,
                                            name=runtime.usecases.model.name, min_group=5)
    assert reloaded.load() and reloaded.current is not None and reloaded.current.users == model.users
    assert not reloaded.current.chosen_together("perfume-oud", "candle-lavender")
