"""Preference learning, vectors, similar users and recommendations, through the MCP surface on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnky_profiles.domain.catalog import Item

from ..conftest import ERAS, FakeClock, World, open_world
from ..support.clients import call, tool_text

pytestmark = pytest.mark.anyio




async def make_user(c: Any, user_id: str, purposes: tuple[str, ...] = ("personalization", "recommendation",
                                                                     "profiling"), **attributes: Any) -> None:
    """A user who grants ``purposes``, then states ``attributes`` (likes are collected for personalization)."""
    await call(c, "update_profile", user_id=user_id, create=True, attributes={"language": "en"})
    for purpose in purposes:
        await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test")
    if attributes:
        await call(c, "update_profile", user_id=user_id, attributes=attributes)


def weights(view: dict[str, Any]) -> dict[tuple[str, str], float]:
    return {(p["token"], p["source"]): p["weight"] for p in view["preferences"]}


@pytest.mark.parametrize("mode", ERAS)
async def test_signals_become_weights_with_evidence(world: World, mode: str) -> None:
    async with world.client("privacy-officer", mode) as c:
        await make_user(c, "u1")
        out = await call(c, "record_events", events=[
            {"user_id": "u1", "event_type": "view", "item_id": "candle-lavender"},
            {"user_id": "u1", "event_type": "purchase", "item_id": "candle-lavender"},
            {"user_id": "u1", "event_type": "return", "item_id": "perfume-oud"},
        ])
        assert out["learning"] == "applied"
        view = await call(c, "get_preferences", user_id="u1", purpose="personalization")
    by_token = {p["token"]: p for p in view["preferences"]}
    assert by_token["note:lavender"]["weight"] > 0
    assert by_token["note:lavender"]["evidence_count"] == 2
    assert sorted(by_token["note:lavender"]["evidence_event_ids"]) == sorted(out["event_ids"][:2])
    assert by_token["note:oud"]["weight"] < 0  # a return is a negative signal
    assert by_token["note:lavender"]["source"] == "implicit"
    assert 0 < by_token["note:lavender"]["confidence"] < 1
    assert not any(p["token"].startswith("item:") for p in view["preferences"])


async def test_explicit_statement_outranks_inferred(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1")
        await call(c, "record_event", user_id="u1", event_type="purchase", item_id="perfume-oud")
        await call(c, "update_profile", user_id="u1", attributes={"dislikes": ["oud"], "likes": ["lavender"]})
        view = await call(c, "get_preferences", user_id="u1", purpose="personalization")
        shown = {p["token"]: p for p in view["preferences"]}
        assert shown["note:oud"]["source"] == "explicit" and shown["note:oud"]["weight"] == -1.0
        assert shown["note:oud"]["confidence"] == 1.0
        assert shown["note:lavender"]["weight"] == 1.0
        # Retracting the statement lets the inferred weight show again.
        await call(c, "update_profile", user_id="u1", attributes={"dislikes": []})
        view = await call(c, "get_preferences", user_id="u1", purpose="personalization")
    shown = {p["token"]: p for p in view["preferences"]}
    assert shown["note:oud"]["source"] == "implicit" and shown["note:oud"]["weight"] > 0


async def test_time_decay_halves_an_inferred_weight_per_half_life(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1")
        await call(c, "record_event", user_id="u1", event_type="purchase", item_id="bath-citrus")
        before = {p["token"]: p["weight"] for p in
                  (await call(c, "get_preferences", user_id="u1", purpose="personalization"))["preferences"]}
        world.clock.advance(days=world.runtime.settings.learning.half_life_days)
        after = {p["token"]: p["weight"] for p in
                 (await call(c, "get_preferences", user_id="u1", purpose="personalization"))["preferences"]}
    assert after["family:citrus"] == pytest.approx(before["family:citrus"] / 2, rel=1e-3)


EVENTS = [
    ("u1", "view", "candle-lavender", {}, 40), ("u1", "purchase", "candle-lavender", {"quantity": 1}, 39),
    ("u1", "rating", "candle-lavender", {"rating": 5}, 38), ("u1", "view", "perfume-oud", {}, 10),
    ("u1", "return", "perfume-oud", {}, 3), ("u2", "search", None, {"query": "vanilla candle"}, 20),
    ("u2", "dwell", "guide-sleep", {"seconds": 240}, 12), ("u2", "rating", "bath-citrus", {"rating": 1}, 2),
    ("u1", "click", "bath-citrus", {}, 1),
]


async def _state(world: World) -> tuple[dict[str, Any], dict[str, Any]]:
    async with world.runtime.store.read() as repo:
        prefs = {u: sorted((p.token, p.source, round(p.weight, 9), p.ref_at, p.evidence_count)
                           for p in await repo.preferences(u)) for u in ("u1", "u2")}
        vectors = {v.user_id: v for v in await repo.user_vectors(["u1", "u2"])}
    return prefs, {u: (np.frombuffer(v.data, "<f4"), v.as_of) if v else None for u, v in vectors.items()}


async def _run(backend: str, tmp_path: Path, frequency: str, shuffled: bool, now: datetime) -> tuple[Any, Any]:
    clock = FakeClock()
    clock.current = now
    async with open_world(backend, tmp_path / frequency, clock,
                          user_profiling={"update_frequency": frequency}) as world:
        async with world.client("privacy-officer") as c:
            for user in ("u1", "u2"):
                await make_user(c, user)
            events = list(reversed(EVENTS)) if shuffled else EVENTS
            for user, event_type, item, props, days_ago in events:
                when = (clock.now() - timedelta(days=days_ago)).isoformat()
                out = await call(c, "record_event", user_id=user, event_type=event_type, item_id=item,
                                 properties=props, occurred_at=when)
                assert out["learning"] == ("applied" if frequency == "realtime" else "queued")
        if frequency == "batch":
            assert await world.runtime.usecases.learning.learn() == len(EVENTS)
        return await _state(world)


async def test_realtime_and_batch_end_in_the_same_state(backend: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    realtime_prefs, realtime_vectors = await _run(backend, tmp_path, "realtime", shuffled=False, now=now)
    batch_prefs, batch_vectors = await _run(backend, tmp_path, "batch", shuffled=True, now=now)
    assert realtime_prefs == batch_prefs
    for user in ("u1", "u2"):
        (a, a_at), (b, b_at) = realtime_vectors[user], batch_vectors[user]
        assert a_at == b_at
        np.testing.assert_allclose(a, b, atol=1e-6)


async def test_rebuilding_a_vector_from_stored_weights_gives_the_stored_vector(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1", likes=["vanilla"])
        await call(c, "record_event", user_id="u1", event_type="purchase", item_id="candle-lavender")
        world.clock.advance(days=3)
        await call(c, "record_event", user_id="u1", event_type="view", item_id="bath-citrus")
    vectors = world.runtime.usecases.discovery.vectors
    vectors.forget()  # nothing cached: rebuild from the stored weights alone
    async with world.runtime.store.read() as repo:
        (stored,) = await repo.user_vectors(["u1"])
        prefs = await repo.preferences("u1")
    assert stored is not None
    rebuilt = await vectors.of(prefs)
    assert rebuilt is not None and rebuilt.as_of == stored.as_of
    np.testing.assert_array_equal(rebuilt.vector, np.frombuffer(stored.data, "<f4"))


async def _similar_world(c: Any) -> None:
    for user, item in (("fan-1", "candle-lavender"), ("fan-2", "candle-lavender"), ("fan-3", "candle-lavender"),
                       ("bold-1", "perfume-oud")):
        await make_user(c, user)
        await call(c, "record_event", user_id=user, event_type="purchase", item_id=item)


async def test_similar_users_are_pseudonymous_consenting_and_explained(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        await make_user(c, "fan-private", purposes=("personalization",))  # no profiling consent
        await call(c, "record_event", user_id="fan-private", event_type="purchase", item_id="candle-lavender")
        found = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=0.5)
    neighbours = found["neighbours"]
    assert len(neighbours) == 2  # fan-2, fan-3; not fan-private, not bold-1
    assert all(n["pseudonym"].startswith("p_") and "fan" not in n["pseudonym"] for n in neighbours)
    assert all(n["similarity"] >= 0.5 for n in neighbours)
    assert "note:lavender" in neighbours[0]["shared_preferences"]
    assert await world.runtime.index.count() == 4


async def test_pseudonyms_are_new_in_every_response(world: World) -> None:
    # Names were stable per caller once; a stable name lets a caller follow a person across answers and tell who
    # is who by elimination (tests/gate/test_pseudonyms.py), so the same caller asking twice gets new names too.
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        a = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=0.5)
        again = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=0.5)
    async with world.client("insights-agent") as c:
        b = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=0.5)
    names = [{n["pseudonym"] for n in found["neighbours"]} for found in (a, again, b)]
    assert all(len(n) == 2 for n in names)
    assert names[0].isdisjoint(names[1]) and names[0].isdisjoint(names[2]) and names[1].isdisjoint(names[2])
    assert sorted(n["similarity"] for n in a["neighbours"]) == sorted(n["similarity"] for n in b["neighbours"])


async def test_min_similarity_applies_to_the_similarity_as_shown(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        await make_user(c, "mixed")
        for item in ("candle-lavender", "perfume-oud", "bath-citrus"):
            await call(c, "record_event", user_id="mixed", event_type="purchase", item_id=item)
        runtime = world.runtime
        async with runtime.store.read() as repo:
            state = await runtime.usecases.discovery.vectors.of((await repo.attribute_weights_of(["fan-1"]))["fan-1"])
        assert state is not None
        exact = [s for _, s in await runtime.index.query(state.vector.tolist(), 10, exclude=["fan-1"])]
        # A threshold halfway between a neighbour's exact similarity and its rounded one: filtering on the exact
        # value would decide it the other way, and so let a caller find the exact value by moving the threshold.
        s = max(exact, key=lambda e: abs(e - round(e * 20) / 20))
        assert abs(s - round(s * 20) / 20) > 1e-3
        threshold = (s + round(s * 20) / 20) / 2
        found = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=threshold)
    shown = sorted(n["similarity"] for n in found["neighbours"])
    assert shown == sorted(round(e * 20) / 20 for e in exact if round(e * 20) / 20 >= threshold)
    assert all(round(v * 20, 6) == round(v * 20) for v in shown)  # rounded to 0.05


async def test_withdrawal_removes_a_user_from_the_index_at_once(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        await call(c, "record_consent", user_id="fan-2", purpose="profiling", granted=False, source="chat")
        assert "fan-2" not in await world.runtime.index.fetch(["fan-2"])
        found = await call(c, "find_similar_users", user_id="fan-1", purpose="profiling", min_similarity=0.5)
        assert len(found["neighbours"]) == 1
        # As a query too: without profiling consent the search is refused.
        result = await c.call_tool("find_similar_users", {"user_id": "fan-2", "purpose": "profiling"})
    assert result.is_error and "withdrawn" in tool_text(result)


async def test_similar_users_needs_the_profiling_purpose(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        result = await c.call_tool("find_similar_users", {"user_id": "fan-1", "purpose": "personalization"})
    assert result.is_error and "profiling" in tool_text(result)


async def test_shared_model_trains_on_consenting_users_only(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        await make_user(c, "private", purposes=("recommendation",))
        await call(c, "record_event", user_id="private", event_type="purchase", item_id="bath-citrus")
    model = await world.runtime.usecases.model.fit()
    assert model.users == 4
    assert model.popularity[model.index["bath-citrus"]] == 0  # only the non-consenting user bought it


async def test_recommendations_follow_tastes_exclude_purchases_and_explain(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1", likes=["vanilla"])
        await call(c, "record_event", user_id="u1", event_type="purchase", item_id="perfume-oud")
        await world.runtime.usecases.model.fit()
        recs = await call(c, "recommend", user_id="u1", purpose="recommendation", kind="product")
        again = await call(c, "recommend", user_id="u1", purpose="recommendation", kind="product",
                           repurchase=True)
    ids = [i["item_id"] for i in recs["items"]]
    assert "perfume-oud" not in ids and recs.get("fallback") is None
    assert ids[0] == "candle-lavender"  # it carries vanilla, which the user stated
    assert any("vanilla" in r["text"] for r in recs["items"][0]["reasons"])
    assert all(i["kind"] == "product" for i in recs["items"])
    again_by_id = {i["item_id"]: i for i in again["items"]}
    bought = [r for r in again_by_id["perfume-oud"]["reasons"] if r["text"] == "You bought it before."]
    assert bought and bought[0]["lineage"] == ["user.behavior"]  # it cites the purchase history
    assert all("bought it before" not in r["text"] for i in again["items"] if i["item_id"] != "perfume-oud"
               for r in i["reasons"])


async def test_cold_start_says_it_is_a_fallback(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1")
        for n in range(5):  # privacy.min_group_size: popularity rests on at least five buyers
            await make_user(c, f"buyer-{n}")
            await call(c, "record_event", user_id=f"buyer-{n}", event_type="purchase", item_id="bath-citrus")
        await world.runtime.usecases.model.fit()
        recs = await call(c, "recommend", user_id="u1", purpose="recommendation")
    assert recs["fallback"] == "popularity"
    assert recs["items"][0]["item_id"] == "bath-citrus"
    assert "know too little" in recs["items"][0]["reasons"][0]["text"]
    assert recs["items"][0]["reasons"][0]["lineage"] == ["system.aggregate"]


async def test_new_catalog_items_are_learned_from(world: World) -> None:
    async with world.runtime.store.write() as repo:
        await repo.put_items([Item("soap-fig", "product", "Fig Soap", {"note": ["fig"], "type": ["soap"]})])
    async with world.client("privacy-officer") as c:
        await make_user(c, "u1")
        await call(c, "record_event", user_id="u1", event_type="purchase", item_id="soap-fig")
        view = await call(c, "get_preferences", user_id="u1", purpose="personalization")
    assert "note:fig" in {p["token"] for p in view["preferences"]}


async def test_relearning_from_stored_events_matches_learning_as_they_came(world: World) -> None:
    async with world.client("privacy-officer") as c:
        await _similar_world(c)
        await call(c, "record_event", user_id="fan-1", event_type="rating", item_id="bath-citrus",
                   properties={"rating": 2})
    before, before_vectors = await _prefs_and_vectors(world, ["fan-1", "bold-1"])
    async with world.runtime.store.write() as repo:
        await repo.clear_preferences(["fan-1", "bold-1"], "implicit")
    assert await world.runtime.usecases.learning.relearn() == 4  # every profile
    after, after_vectors = await _prefs_and_vectors(world, ["fan-1", "bold-1"])
    assert after == before
    for user in before_vectors:
        np.testing.assert_allclose(after_vectors[user], before_vectors[user], atol=1e-6)


async def _prefs_and_vectors(world: World, users: list[str]) -> tuple[Any, Any]:
    async with world.runtime.store.read() as repo:
        prefs = {u: sorted((p.token, p.source, round(p.weight, 9), p.evidence_count)
                           for p in await repo.preferences(u)) for u in users}
        vectors = {v.user_id: np.frombuffer(v.data, "<f4") for v in await repo.user_vectors(users)}
    return prefs, vectors
