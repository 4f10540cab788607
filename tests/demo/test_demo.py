"""The demo generator: deterministic, valid by the domain's own rules, structured, loadable and re-loadable."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mnky_profiles.domain.consent import SALE_OPT_OUT_SOURCES, fold
from mnky_profiles.domain.errors import Conflict
from mnky_profiles.domain.events import EVENT_TYPES
from mnky_profiles.domain.fields import BY_NAME, INFERENCE
from mnky_profiles.domain.profiles import check_source, coerce_value
from mnky_profiles.domain.purposes import CONSENT_PURPOSES, Collection
from mnky_profiles.examples.demo import (
    FAMILIES,
    PRICE_BANDS,
    DemoUser,
    generate_catalog,
    generate_population,
    load_demo,
)
from mnky_profiles.store.sql import schema as t
from mnky_profiles.store.sql.store import SQLStore
from mnky_profiles.usecases.events import EventInput, validate

from ..conftest import PG_URL, FakeClock, open_world, pg_schema
from ..support.clients import tool_text

pytestmark = pytest.mark.anyio

NOW = datetime(2026, 11, 26, 9, 30, 15, 250_000, tzinfo=UTC)  # sub-second on purpose: nothing may pass it
CATALOG = generate_catalog(7)


def population(users: int, seed: int = 7, now: datetime = NOW) -> list[DemoUser]:
    return list(generate_population(users, seed, now, CATALOG))


POPULATION = population(400)


def digest(users: list[DemoUser]) -> str:
    return hashlib.sha256(repr(users).encode()).hexdigest()


# -- the catalog ---------------------------------------------------------------------------------------------

def test_catalog_reads_like_the_brand() -> None:
    assert 150 <= len(CATALOG) <= 300
    ids = [i.item_id for i in CATALOG]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z]+(-[a-z]+)*-\d{4}", i) for i in ids)
    products = [i for i in CATALOG if i.kind == "product"]
    content = [i for i in CATALOG if i.kind == "content"]
    assert len(content) >= 30 and len(products) >= 150
    for item in products:
        assert {"type", "note", "family", "mood", "collection", "price_band"} <= item.attributes.keys(), item
        assert set(item.attributes["family"]) <= set(FAMILIES)
        assert item.attributes["price_band"][0] in PRICE_BANDS
        assert item.title.split()[0].lower() not in {"product", "item"}
    assert all("topic" in i.attributes for i in content)
    types = Counter(i.attributes["type"][0] for i in CATALOG)
    assert {"eau de parfum", "body mist", "candle", "reed diffuser", "bath salts", "body oil", "soap",
            "body lotion", "guide", "ritual", "article"} <= types.keys()
    notes = {n for i in products for n in i.attributes["note"]}
    assert {"lavender", "vanilla", "bergamot", "oud", "sandalwood", "rose", "jasmine", "amber", "musk", "vetiver",
            "cedar", "fig", "tonka", "neroli", "patchouli", "pink pepper"} <= notes
    assert {i.attributes["price_band"][0] for i in products} == set(PRICE_BANDS)


def test_catalog_is_deterministic_per_seed() -> None:
    assert generate_catalog(7) == CATALOG
    other = generate_catalog(8)
    assert [i.item_id for i in other] == [i.item_id for i in CATALOG]  # same ids, another assortment
    assert other != CATALOG


# -- the population ------------------------------------------------------------------------------------------

def test_population_is_deterministic() -> None:
    assert population(60) == POPULATION[:60]
    assert digest(population(60, seed=8)) != digest(POPULATION[:60])
    # A user depends on the seed and index alone, not on how many others are generated.
    assert population(25) == POPULATION[:25]
    assert [u.user_id for u in POPULATION[:3]] == ["user-000001", "user-000002", "user-000003"]


def test_population_is_the_same_in_another_process() -> None:
    code = ("import hashlib, sys; from datetime import datetime; "
            "from mnky_profiles.examples.demo import generate_catalog, generate_population; "
            f"users = list(generate_population(40, 7, datetime.fromisoformat({NOW.isoformat()!r}), "
            "generate_catalog(7))); print(hashlib.sha256(repr(users).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # string hashing must not leak into the data
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == digest(POPULATION[:40])


def test_every_record_passes_the_domain_rules() -> None:
    items = {i.item_id for i in CATALOG}
    window = NOW - timedelta(days=181)
    for user in POPULATION:
        assert user.created_at.tzinfo is not None and user.created_at <= NOW
        for e in user.events:
            assert e.user_id == user.user_id
            assert e.occurred_at.utcoffset() == timedelta(0) and window <= e.occurred_at <= NOW, e
            assert e.occurred_at >= user.created_at
            assert e.item_id is None or e.item_id in items
            # The same validation record_events applies: type, item, properties, time.
            accepted = validate(EventInput(e.user_id, e.event_type, e.item_id, e.properties,
                                           e.occurred_at.isoformat()), NOW, 1095)
            assert accepted == e
        assert [e.occurred_at for e in user.events] == sorted(e.occurred_at for e in user.events)
        for a in user.attributes:
            check_source(a.source)
            assert coerce_value(a.field, a.value) == a.value, a
            assert 0 < a.confidence <= 1 and user.created_at <= a.observed_at <= NOW
        keys = [(a.field, a.source) for a in user.attributes]
        assert len(keys) == len(set(keys))  # the store keys attributes by (field, source)
        check_consents(user)


def check_consents(user: DemoUser) -> None:
    granted: set[str] = set()
    assert [c.recorded_at for c in user.consents] == sorted(c.recorded_at for c in user.consents)
    for c in user.consents:
        assert c.purpose in CONSENT_PURPOSES and user.created_at <= c.recorded_at <= NOW
        assert c.recorded_at.utcoffset() == timedelta(0)
        if c.source in SALE_OPT_OUT_SOURCES:
            assert (c.purpose, c.state) == ("marketing", "denied")
            continue
        if c.state == "granted":
            granted.add(c.purpose)
            if c.purpose == "wellbeing":
                assert c.evidence and c.evidence.strip()
            assert c.expires_at is None or c.expires_at > c.recorded_at
        else:
            assert c.expires_at is None
            # Saying no after a grant is a withdrawal, before any grant a denial (as record_consent does).
            assert (c.state == "withdrawn") == (c.purpose in granted), c
            granted.discard(c.purpose)


def test_consent_is_mixed() -> None:
    decisions: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    for user in POPULATION:
        ledger = fold(user.user_id, user.consents)
        sources.update(c.source for c in user.consents)
        for purpose in CONSENT_PURPOSES:
            decision = ledger.decide(purpose, NOW)
            decisions[purpose] += decision.allowed
            reasons[decision.reason] += 1
    n = len(POPULATION)
    assert decisions["personalization"] > 0.6 * n
    for purpose in ("recommendation", "profiling", "marketing"):
        assert 0.1 * n < decisions[purpose] < decisions["personalization"], purpose
    assert 0 < decisions["wellbeing"] < 0.15 * n
    assert {"granted", "no_record", "denied", "withdrawn", "expired", "sale_opt_out"} <= reasons.keys()
    assert sources["global_privacy_control"] and sources["do_not_sell_or_share"]
    assert any(c.expires_at and c.expires_at > NOW for u in POPULATION for c in u.consents)


def test_mood_check_ins_only_while_wellbeing_is_granted() -> None:
    checked_in = 0
    for user in POPULATION:
        moods = [e.occurred_at for e in user.events if e.event_type == "mood_check_in"]
        if not moods:
            continue
        checked_in += 1
        history = [c for c in user.consents if c.purpose == "wellbeing"]
        for at in moods:
            current = fold(user.user_id, [c for c in history if c.recorded_at <= at])
            assert current.decide("wellbeing", at).allowed, (user.user_id, at)
    assert checked_in > 0


def test_every_record_had_its_basis_when_it_happened() -> None:
    """What the demo holds is what the server would have stored live: each event and attribute only while the
    user consented to a purpose it is collected for, or the contract covered it (schema://profile)."""
    def basis(user: DemoUser, collected: Collection | None, at: datetime) -> bool:
        ledger = fold(user.user_id, [c for c in user.consents if c.recorded_at <= at])
        return collected is not None and any(ledger.decide(p, at).allowed for p in collected.purposes)

    contract_only = 0
    for user in POPULATION:
        for e in user.events:
            assert basis(user, EVENT_TYPES[e.event_type].collected, e.occurred_at), (user.user_id, e)
        for a in user.attributes:
            assert basis(user, BY_NAME[a.field].collected, a.observed_at), (user.user_id, a)
            assert not a.source.startswith("inferred:") or basis(user, INFERENCE, a.observed_at), (user.user_id, a)
        contract_only += bool(user.events) and all(e.event_type in ("purchase", "return") for e in user.events)
    assert contract_only  # people who never agreed to more still bought things: the contract keeps their orders


def test_behaviour_follows_taste_and_a_funnel() -> None:
    counts = Counter(e.event_type for u in POPULATION for e in u.events)
    assert 15 <= counts.total() / len(POPULATION) <= 35
    assert counts["view"] > counts["click"] > counts["add_to_cart"] > counts["purchase"] > counts["rating"]
    assert counts["purchase"] > counts["return"] > 0
    assert counts["session"] and counts["search"] and counts["dwell"] and counts["feature_use"]

    # Views concentrate on items that match what people say they like, well above chance.
    tokens = {i.item_id: {v for vs in i.attributes.values() for v in vs} for i in CATALOG}
    seen = hits = 0
    chance = 0.0
    for user in POPULATION:
        likes = next((set(a.value) for a in user.attributes
                      if a.field == "likes" and a.source == "explicit" and isinstance(a.value, list)), None)
        if not likes:
            continue
        views = [e.item_id for e in user.events if e.event_type == "view" and e.item_id is not None]
        seen += len(views)
        hits += sum(bool(tokens[i] & likes) for i in views)
        chance += len(views) * sum(bool(tok & likes) for tok in tokens.values()) / len(tokens)
    assert hits / seen > chance / seen + 0.15


# -- loading -------------------------------------------------------------------------------------------------

@asynccontextmanager
async def demo_store(backend: str, tmp_path: Path) -> AsyncIterator[SQLStore]:
    if backend == "postgresql":
        async with pg_schema() as schema:
            store = SQLStore.postgresql(PG_URL, schema)
            try:
                await store.migrate()
                yield store
            finally:
                await store.close()
    else:
        store = SQLStore.sqlite(tmp_path / "demo.db")
        try:
            await store.migrate()
            yield store
        finally:
            await store.close()


async def row_counts(store: SQLStore) -> dict[str, int]:
    tables = {"items": t.items, "users": t.profiles, "attributes": t.attributes, "events": t.events,
              "consents": t.consents}

    def count(conn: Any) -> dict[str, int]:
        return {name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in tables.items()}

    return await store.db.run_sync(count)


async def test_load_demo_writes_what_it_reports_and_reruns(backend: str, tmp_path: Path) -> None:
    users = population(120)
    async with demo_store(backend, tmp_path) as store:
        counts = await load_demo(store, users=120, seed=7, now=NOW)
        assert counts == {
            "items": len(CATALOG), "users": 120, "attributes": sum(len(u.attributes) for u in users),
            "events": sum(len(u.events) for u in users), "consents": sum(len(u.consents) for u in users),
            "users_already_present": 0,
        }
        stored = await row_counts(store)
        assert stored == {k: counts[k] for k in stored}

        # Running it again, even later, changes nothing; asking for more users adds only the missing ones.
        again = await load_demo(store, users=120, seed=7, now=NOW + timedelta(days=3))
        assert again == {"items": 0, "users": 0, "attributes": 0, "events": 0, "consents": 0,
                         "users_already_present": 120}
        assert await row_counts(store) == stored
        more = await load_demo(store, users=150, seed=7, now=NOW)
        assert more["users"] == 30 and more["users_already_present"] == 120
        assert more["events"] == sum(len(u.events) for u in POPULATION[120:150])

        # Another seed's catalog would not match the stored one: refused, and nothing written.
        before = await row_counts(store)
        with pytest.raises(Conflict, match="different demo catalog"):
            await load_demo(store, users=10, seed=8, now=NOW)
        assert await row_counts(store) == before

        # What was loaded reads back as generated.
        user = users[7]
        async with store.read() as repo:
            assert await repo.consent_history(user.user_id) == user.consents
            assert sorted(await repo.attributes(user.user_id), key=repr) == sorted(user.attributes, key=repr)
            recent = await repo.recent_events(user.user_id, 1000)
            assert Counter((e.event_type, e.item_id, e.occurred_at) for e in recent) == \
                Counter((e.event_type, e.item_id, e.occurred_at) for e in user.events)
            stored_items = await repo.items([i.item_id for i in CATALOG])
            assert sorted(stored_items, key=lambda i: i.item_id) == sorted(CATALOG, key=lambda i: i.item_id)


async def test_the_loaded_demo_serves_through_mcp(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    async with open_world(backend, tmp_path, clock) as world:
        await load_demo(world.runtime.store, users=80, seed=7, now=clock.now())
        users = list(generate_population(80, 7, clock.now(), CATALOG))

        def allowed(user: DemoUser, purpose: str) -> bool:
            return fold(user.user_id, user.consents).decide(purpose, clock.now()).allowed

        def explicit_likes(user: DemoUser) -> Any:
            return next((a.value for a in user.attributes if a.field == "likes" and a.source == "explicit"), None)

        fan = next(u for u in users if allowed(u, "personalization") and explicit_likes(u) and u.events)
        stranger = next(u for u in users if not allowed(u, "personalization"))
        async with world.client("shopping-assistant") as c:
            result = await c.call_tool("get_profile", {"user_id": fan.user_id, "purpose": "personalization"})
            assert not result.is_error, tool_text(result)
            view = result.structured_content
            refused = await c.call_tool("get_profile", {"user_id": stranger.user_id,
                                                        "purpose": "personalization"})
        assert view["preferences"]["likes"]["value"] == explicit_likes(fan)
        assert view["preferences"]["likes"]["source"] == "explicit"
        behaviour = Counter(e.event_type for e in fan.events if e.event_type != "mood_check_in")
        assert view["behavior"]["event_counts"] == dict(behaviour)
        assert refused.is_error and "consent" in tool_text(refused)

        opted_out = next(u for u in users if any(c.source in SALE_OPT_OUT_SOURCES for c in u.consents))
        async with world.client("privacy-officer") as c:
            result = await c.call_tool("check_consent", {"user_id": opted_out.user_id, "purpose": "marketing"})
        assert result.structured_content["reason"] == "sale_opt_out"


def test_the_demo_command_can_run_twice(tmp_path: Path) -> None:
    env = {**os.environ, "MNKY_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "mnky_profiles.server.cli", "demo", "--no-serve", "--users", "30"]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "users 30" in first.stderr
    second = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "users 0" in second.stderr and "users_already_present 30" in second.stderr
