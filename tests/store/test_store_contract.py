"""The storage contract: every method of the ``Repositories`` port and the audit store, written once and run
against SQLite and PostgreSQL. Whatever one database does, the other must do the same."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import SQLAlchemyError

from mnky_profiles.domain.audit import AuditEntry, ChainedEntry, Withholding
from mnky_profiles.domain.catalog import Item
from mnky_profiles.domain.consent import SALE_OPT_OUT_SOURCES, ConsentRecord, ConsentState, fold
from mnky_profiles.domain.errors import Conflict, DomainError
from mnky_profiles.domain.events import Event
from mnky_profiles.domain.preferences import Preference
from mnky_profiles.domain.profiles import Attribute
from mnky_profiles.domain.purposes import PURPOSE_NAMES
from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.database import SQLiteDatabase
from mnky_profiles.store.sql.store import SQLStore

from ..conftest import PG_URL, pg_schema

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)

StoreFactory = Callable[[], SQLStore]


@pytest.fixture
async def open_store(backend: str, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens a new store on the same database each call (a fresh file or a fresh PostgreSQL schema per test)."""
    if backend == "postgresql":
        async with pg_schema() as name:
            yield lambda: SQLStore.postgresql(PG_URL, schema=name)
    else:
        yield lambda: SQLStore.sqlite(tmp_path / "store.db")


@pytest.fixture
async def store(open_store: StoreFactory) -> AsyncIterator[SQLStore]:
    s = open_store()
    try:
        await s.migrate()
        yield s
    finally:
        await s.close()


async def make_profiles(store: SQLStore, *user_ids: str, at: datetime = T0) -> None:
    async with store.write() as repo:
        for user_id in user_ids:
            await repo.create_profile(user_id, at)


def ev(user_id: str, event_type: str, at: datetime, item_id: str | None = None, **properties: object) -> Event:
    return Event(user_id, event_type, at, item_id, dict(properties))


def consent(purpose: str, state: ConsentState, source: str, minutes: int, user_id: str = "u1",
            evidence: str | None = None, expires_at: datetime | None = None) -> ConsentRecord:
    return ConsentRecord(user_id, purpose, state, source, T0 + timedelta(minutes=minutes), evidence, expires_at)


# -- profiles ------------------------------------------------------------------------------------------------


async def test_profile_exists_and_existing_profiles(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    async with store.read() as repo:
        assert await repo.profile_exists("u1")
        assert not await repo.profile_exists("nobody")
        assert not await repo.profile_exists("U1")  # ids are case-sensitive
        assert await repo.existing_profiles(["u2", "nobody", "u1", "u1"]) == {"u1", "u2"}
        assert await repo.existing_profiles([]) == set()


async def test_existing_profiles_beyond_one_batch(store: SQLStore) -> None:
    wanted = [f"user-{i:04d}" for i in range(1200)]
    await make_profiles(store, *wanted[::2])
    async with store.read() as repo:
        assert await repo.existing_profiles(wanted) == set(wanted[::2])


async def test_duplicate_profile_is_a_domain_conflict(store: SQLStore) -> None:
    await make_profiles(store, "u1")
    with pytest.raises(Conflict) as caught:
        async with store.write() as repo:
            await repo.create_profile("u1", T0)
    assert isinstance(caught.value, DomainError)
    assert not isinstance(caught.value, SQLAlchemyError)
    # The store stays usable after the failed transaction.
    await make_profiles(store, "u2")
    async with store.read() as repo:
        assert await repo.existing_profiles(["u1", "u2"]) == {"u1", "u2"}


async def test_rows_for_an_unknown_profile_are_a_domain_conflict(store: SQLStore) -> None:
    attribute = Attribute("likes", ["oud"], "explicit", 1.0, T0)
    with pytest.raises(Conflict):
        async with store.write() as repo:
            await repo.put_attributes("ghost", [attribute])
    with pytest.raises(Conflict):
        async with store.write() as repo:
            await repo.add_events([ev("ghost", "view", T0, "x")], T0)
    with pytest.raises(Conflict):
        async with store.write() as repo:
            await repo.add_consent(consent("marketing", "granted", "chat", 0, user_id="ghost"))


async def test_a_failed_write_block_leaves_nothing_written(store: SQLStore) -> None:
    await make_profiles(store, "u0")
    with pytest.raises(RuntimeError, match="boom"):
        async with store.write() as repo:
            await repo.create_profile("u1", T0)
            await repo.put_attributes("u1", [Attribute("likes", ["oud"], "explicit", 1.0, T0)])
            await repo.add_events([ev("u1", "view", T0, "candle")], T0)
            await repo.add_consent(consent("marketing", "granted", "chat", 0))
            await repo.put_items([Item("candle", "product", "Candle", {})])
            await repo.put_attributes("u0", [Attribute("likes", ["musk"], "explicit", 1.0, T0)])
            raise RuntimeError("boom")
    async with store.read() as repo:
        assert not await repo.profile_exists("u1")
        assert await repo.attributes("u1") == []
        assert await repo.attributes("u0") == []
        assert await repo.event_counts("u1") == {}
        assert await repo.consent_history("u1") == []
        assert await repo.existing_items(["candle"]) == set()
    # A conflict in the middle of a block also undoes what came before it.
    with pytest.raises(Conflict):
        async with store.write() as repo:
            await repo.create_profile("u2", T0)
            await repo.create_profile("u0", T0)
    async with store.read() as repo:
        assert not await repo.profile_exists("u2")


async def test_attributes_upsert_per_field_and_source(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    later = T0 + timedelta(days=1)
    async with store.write() as repo:
        await repo.put_attributes("u1", [
            Attribute("likes", ["lavender", "vanilla"], "explicit", 1.0, T0),
            Attribute("likes", ["oud"], "inferred:model-a", 0.4, T0),
            Attribute("age_band", "25-34", "external:crm", 0.9, T0),
            Attribute("visits", 3, "implicit", 0.5, T0),
        ])
        await repo.put_attributes("u2", [Attribute("likes", ["citrus"], "explicit", 1.0, T0)])
        await repo.put_attributes("u1", [])
    async with store.write() as repo:
        await repo.put_attributes("u1", [Attribute("likes", ["bergamot"], "explicit", 0.8, later)])
    async with store.read() as repo:
        got = sorted(await repo.attributes("u1"), key=lambda a: (a.field, a.source))
        other = await repo.attributes("u2")
        nobody = await repo.attributes("nobody")
    assert got == [
        Attribute("age_band", "25-34", "external:crm", 0.9, T0),
        Attribute("likes", ["bergamot"], "explicit", 0.8, later),
        Attribute("likes", ["oud"], "inferred:model-a", 0.4, T0),
        Attribute("visits", 3, "implicit", 0.5, T0),
    ]
    assert all(a.observed_at.tzinfo is not None and a.observed_at.utcoffset() == timedelta(0) for a in got)
    assert other == [Attribute("likes", ["citrus"], "explicit", 1.0, T0)]
    assert nobody == []


async def test_user_ids_by_prefix_sorted_and_limited(store: SQLStore) -> None:
    ids = ["ana", "anna", "annabel", "bob", "an", "Anne"]
    await make_profiles(store, *ids)
    async with store.read() as repo:
        assert await repo.user_ids("an", 10) == ["an", "ana", "anna", "annabel"]
        assert await repo.user_ids("an", 2) == ["an", "ana"]
        assert await repo.user_ids("ann", 10) == ["anna", "annabel"]
        assert await repo.user_ids("", 100) == sorted(ids)
        assert await repo.user_ids("zz", 10) == []
        # A prefix matches case-sensitively, like every other lookup by id.
        assert await repo.user_ids("An", 10) == ["Anne"]


async def test_user_ids_page_on_after_the_last_id_seen(store: SQLStore) -> None:
    ids = ["an", "ana", "anna", "annabel", "bob"]
    await make_profiles(store, *ids)
    async with store.read() as repo:
        assert await repo.user_ids("an", 2, after="an") == ["ana", "anna"]
        assert await repo.user_ids("an", 2, after="anna") == ["annabel"]
        assert await repo.user_ids("an", 2, after="annabel") == []
        # The cursor need not be an id that exists, and never widens the prefix.
        assert await repo.user_ids("an", 10, after="anb") == ["anna", "annabel"]
        assert await repo.user_ids("", 10, after="b") == ["bob"]


async def test_user_ids_prefix_wildcards_are_literal(store: SQLStore) -> None:
    ids = ["a%b", "a%%", "a_b", "axb", "ab", "a\\b", "a\\%", "abc"]
    await make_profiles(store, *ids)
    async with store.read() as repo:
        assert set(await repo.user_ids("a%", 10)) == {"a%b", "a%%"}
        assert set(await repo.user_ids("a_", 10)) == {"a_b"}
        assert set(await repo.user_ids("a%%", 10)) == {"a%%"}
        assert set(await repo.user_ids("a\\", 10)) == {"a\\b", "a\\%"}
        assert set(await repo.user_ids("a\\%", 10)) == {"a\\%"}
        assert set(await repo.user_ids("a", 10)) == set(ids)


# -- events --------------------------------------------------------------------------------------------------


async def test_add_events_returns_ids_in_input_order(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    types = ["view", "click", "purchase", "view", "rating"] * 250  # more than one insert batch
    batch = [ev("u1" if i % 3 else "u2", kind, T0 + timedelta(seconds=i % 7), f"item-{i}")
             for i, kind in enumerate(types)]
    async with store.write() as repo:
        assert await repo.add_events([], T0) == []
        ids = await repo.add_events(batch, T0)
        more = await repo.add_events(batch[:3], T0)
    assert len(ids) == len(batch) and len(set(ids)) == len(ids)
    assert ids == sorted(ids) and min(more) > max(ids)
    events = schema.events
    async with store.read() as repo:
        rows = (await repo.conn.execute(sa.select(events.c.id, events.c.item_id, events.c.user_id))).all()
    by_id = {r.id: (r.user_id, r.item_id) for r in rows}
    assert [by_id[i] for i in ids] == [(e.user_id, e.item_id) for e in batch]


async def test_event_counts_per_type_for_one_user(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2", "u3")
    async with store.write() as repo:
        await repo.add_events([
            ev("u1", "view", T0, "a"), ev("u1", "view", T0, "b"), ev("u1", "purchase", T0, "a"),
            ev("u2", "view", T0, "a"), ev("u1", "search", T0, query="oud"),
        ], T0)
    async with store.read() as repo:
        assert await repo.event_counts("u1") == {"view": 2, "purchase": 1, "search": 1}
        assert await repo.event_counts("u2") == {"view": 1}
        assert await repo.event_counts("u3") == {}


async def test_recent_events_newest_first_with_limit(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    props = {"query": "oud & vanilla — ünïcode", "price": 42.5, "quantity": 2, "gift": True, "note": None,
             "nested": {"tags": ["a", "b"], "depth": {"x": [1, 2.5, False]}}}
    async with store.write() as repo:
        await repo.add_events([
            ev("u1", "view", T0 + timedelta(hours=1), "old"),
            ev("u1", "search", T0 + timedelta(hours=3), None, **props),
            ev("u1", "click", T0 + timedelta(hours=2), "tie-first"),
            ev("u1", "view", T0 + timedelta(hours=2), "tie-second"),
            ev("u2", "view", T0 + timedelta(hours=9), "someone-else"),
        ], T0 + timedelta(days=1))
    async with store.read() as repo:
        recent = await repo.recent_events("u1", 10)
        top2 = await repo.recent_events("u1", 2)
        none = await repo.recent_events("nobody", 10)
    # Newest first; between equal times the later recorded one first.
    assert [e.item_id for e in recent] == [None, "tie-second", "tie-first", "old"]
    assert recent[0] == Event("u1", "search", T0 + timedelta(hours=3), None, props)
    assert recent[1] == Event("u1", "view", T0 + timedelta(hours=2), "tie-second", {})
    assert top2 == recent[:2]
    assert none == []


# -- time and JSON -------------------------------------------------------------------------------------------


async def test_aware_datetimes_come_back_as_the_same_instant_in_utc(store: SQLStore) -> None:
    local = datetime(2024, 7, 14, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    western = datetime(2024, 12, 31, 20, 0, 0, 1, tzinfo=timezone(timedelta(hours=-8)))
    await make_profiles(store, "u1", at=local)
    async with store.write() as repo:
        await repo.put_attributes("u1", [Attribute("likes", ["oud"], "explicit", 1.0, western)])
        await repo.add_events([ev("u1", "view", local, "a")], western)
        await repo.add_consent(ConsentRecord("u1", "marketing", "granted", "chat", local, expires_at=western))
    async with store.read() as repo:
        (attribute,) = await repo.attributes("u1")
        (event,) = await repo.recent_events("u1", 1)
        (record,) = await repo.consent_history("u1")
    for value, expected in [(attribute.observed_at, western), (event.occurred_at, local),
                            (record.recorded_at, local), (record.expires_at, western)]:
        assert value == expected
        assert value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)
        assert value.isoformat() == expected.astimezone(UTC).isoformat()


async def test_json_values_round_trip(store: SQLStore) -> None:
    await make_profiles(store, "u1")
    values: list[Attribute] = [
        Attribute("display_name", "Zoë 'Z' \"Quoted\" 🌙", "explicit", 1.0, T0),
        Attribute("likes", ["ünïcode", "with space", ""], "implicit", 0.25, T0),
        Attribute("visits", 2**40, "inferred:counter", 0.125, T0),
        Attribute("empty", [], "external:crm", 0.0, T0),
    ]
    async with store.write() as repo:
        await repo.put_attributes("u1", values)
    async with store.read() as repo:
        got = {a.field: a for a in await repo.attributes("u1")}
    assert got == {a.field: a for a in values}


# -- consent -------------------------------------------------------------------------------------------------


async def test_consent_history_oldest_first_and_fields_round_trip(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    records = [
        consent("personalization", "granted", "chat:shopping", 0, evidence="said yes in chat",
                expires_at=T0 + timedelta(days=365)),
        consent("marketing", "denied", "web_form", 1),
        consent("personalization", "withdrawn", "app_settings", 2),
        consent("marketing", "granted", "web_form", 3, user_id="u2"),
    ]
    async with store.write() as repo:
        for record in records:
            await repo.add_consent(record)
    async with store.read() as repo:
        assert await repo.consent_history("u1") == records[:3]
        assert await repo.consent_history("u2") == records[3:]
        assert await repo.consent_history("nobody") == []


async def test_consents_fold_to_the_latest_ordinary_record_per_purpose(store: SQLStore) -> None:
    await make_profiles(store, "u1")
    history = [
        consent("personalization", "granted", "chat", 0),
        consent("recommendation", "granted", "chat", 1),
        consent("personalization", "withdrawn", "settings", 2),
        consent("recommendation", "denied", "settings", 3),
        consent("recommendation", "granted", "chat", 4, expires_at=T0 + timedelta(days=1)),
    ]
    async with store.write() as repo:
        for record in history:
            await repo.add_consent(record)
    async with store.read() as repo:
        folded = await repo.consents("u1")
        empty = await repo.consents("nobody")
    assert folded.user_id == "u1"
    assert folded.current == {"personalization": history[2], "recommendation": history[4]}
    assert folded.opt_outs == ()
    now = T0 + timedelta(hours=1)
    assert folded.decide("personalization", now).reason == "withdrawn"
    assert folded.decide("recommendation", now).allowed
    assert folded.decide("recommendation", T0 + timedelta(days=2)).reason == "expired"
    assert folded.decide("profiling", now).reason == "no_record"
    assert empty.current == {} and empty.opt_outs == ()


async def test_sale_opt_outs_are_sticky_until_the_same_source_grants(store: SQLStore) -> None:
    await make_profiles(store, "u1")
    dnss = consent("marketing", "denied", "do_not_sell_or_share", 0)
    gpc = consent("marketing", "denied", "global_privacy_control", 1)
    grant = consent("marketing", "granted", "chat", 2)
    now = T0 + timedelta(hours=1)

    async def fold() -> tuple[dict[str, ConsentRecord], tuple[ConsentRecord, ...], bool]:
        async with store.read() as repo:
            folded = await repo.consents("u1")
        return folded.current, folded.opt_outs, folded.decide("marketing", now).allowed

    async def add(record: ConsentRecord) -> None:
        async with store.write() as repo:
            await repo.add_consent(record)

    await add(dnss)
    await add(gpc)
    await add(grant)
    # An ordinary grant after the opt-outs does not lift them, and opt-outs never count as ordinary records.
    assert await fold() == ({"marketing": grant}, (dnss, gpc), False)
    # A grant from one opt-out source lifts only that source's opt-out.
    await add(consent("marketing", "granted", "do_not_sell_or_share", 3))
    assert await fold() == ({"marketing": grant}, (gpc,), False)
    await add(consent("marketing", "granted", "global_privacy_control", 4))
    assert await fold() == ({"marketing": grant}, (), True)
    # A later opt-out stands again, whatever ordinary records follow it.
    again = consent("marketing", "withdrawn", "global_privacy_control", 5)
    await add(again)
    await add(consent("marketing", "granted", "chat", 6))
    current, opt_outs, allowed = await fold()
    assert opt_outs == (again,) and not allowed and current["marketing"].recorded_at == T0 + timedelta(minutes=6)


# -- items ---------------------------------------------------------------------------------------------------


async def test_items_put_upsert_and_read(store: SQLStore) -> None:
    candle = Item("candle", "product", "Lavender Candle", {"note": ["lavender", "vanilla"], "family": ["floral"]})
    guide = Item("guide", "content", "Sleep guide", {})
    async with store.write() as repo:
        await repo.put_items([])
        await repo.put_items([candle, guide])
    renamed = Item("candle", "product", "Lavender Dusk Candle", {"note": ["lavender"], "mood": ["calm"]})
    async with store.write() as repo:
        await repo.put_items([renamed])
    async with store.read() as repo:
        assert await repo.existing_items(["candle", "nope", "guide", "candle"]) == {"candle", "guide"}
        assert await repo.existing_items([]) == set()
        got = sorted(await repo.items(["guide", "candle", "nope", "candle"]), key=lambda i: i.item_id)
        assert await repo.items([]) == []
    assert got == [renamed, guide]


# -- audit store and server keys -----------------------------------------------------------------------------


def chained(seq: int, subject: str | None = "p-1", outcome: str = "ok") -> ChainedEntry:
    entry = AuditEntry(
        at=T0 + timedelta(seconds=seq), caller="shopping-assistant", action="tool:get_profile", subject=subject,
        purpose="personalization", released=("preferences.likes", "demographic.language"),
        withheld=(Withholding("identity.email", "user.contact", "purpose_not_compatible"),), outcome=outcome,
    )
    # Every third entry as from before the audit key (no key id): both kinds come back as written.
    return ChainedEntry(seq, entry, prev_hash=f"{seq - 1:064x}", hash=f"{seq:064x}",
                        key_id=None if seq % 3 == 0 else f"{seq:016x}")


async def test_audit_append_last_head_and_taken_places(store: SQLStore) -> None:
    assert await store.last() is None
    assert await store.head() is None
    assert [e async for e in store.entries()] == []
    first = chained(1)
    assert await store.append(first)
    assert await store.last() == first
    assert await store.head() == (1, first.hash)
    # The place is taken: nothing changes, not the entry and not the head.
    assert not await store.append(chained(1, subject="intruder", outcome="error:x"))
    assert await store.last() == first
    assert await store.head() == (1, first.hash)
    second = chained(2, subject=None)
    assert await store.append(second)
    assert await store.last() == second
    assert await store.head() == (2, second.hash)


async def test_audit_entries_in_order_and_by_subject(store: SQLStore) -> None:
    written = [chained(seq, subject=("p-a" if seq % 2 else "p-b") if seq % 5 else None) for seq in range(1, 13)]
    for entry in reversed(written):  # the order of appends does not matter, the place does
        assert await store.append(entry)
    assert [e async for e in store.entries()] == written
    assert [e async for e in store.entries(batch=5)] == written  # across pages
    assert [e async for e in store.entries(subjects=["p-a"], batch=2)] == [
        e for e in written if e.entry.subject == "p-a"]
    assert [e async for e in store.entries(subjects=["p-none"])] == []
    assert [e async for e in store.entries(subjects=["p-a", "p-b"])] == [e for e in written if e.entry.subject]


async def test_server_secret_is_stable_across_calls_and_reopen(store: SQLStore, open_store: StoreFactory) -> None:
    first = await store.secret("pseudonyms")
    assert len(first) == 32
    assert await store.secret("pseudonyms") == first
    other = await store.secret("other")
    assert other != first and len(other) == 32
    reopened = open_store()
    try:
        await reopened.migrate()
        assert await reopened.secret("pseudonyms") == first
        assert await reopened.secret("other") == other
    finally:
        await reopened.close()


async def test_data_survives_reopening(store: SQLStore, open_store: StoreFactory) -> None:
    await make_profiles(store, "u1")
    assert await store.append(chained(1))
    reopened = open_store()
    try:
        async with reopened.read() as repo:
            assert await repo.profile_exists("u1")
        assert await reopened.last() == chained(1)
    finally:
        await reopened.close()


async def test_consenting_picks_latest_unexpired_grants_among_the_given_users(store: SQLStore) -> None:
    await make_profiles(store, "a", "b", "c", "d", "e")
    now = T0 + timedelta(hours=2)
    async with store.write() as repo:
        await repo.add_consent(consent("profiling", "granted", "web", 1, user_id="a"))
        await repo.add_consent(consent("profiling", "granted", "web", 1, user_id="b"))
        await repo.add_consent(consent("profiling", "withdrawn", "chat", 2, user_id="b"))  # latest says no
        await repo.add_consent(ConsentRecord("c", "profiling", "granted", "web", T0, None, T0 + timedelta(hours=1)))
        await repo.add_consent(consent("personalization", "granted", "web", 1, user_id="d"))  # another purpose
        await repo.add_consent(consent("profiling", "granted", "web", 1, user_id="e"))
    async with store.read() as repo:
        assert await repo.consenting("profiling", now, ["e", "a", "b", "c", "d", "nobody"]) == ["a", "e"]
        assert await repo.consenting("profiling", now, ["b"]) == []
        assert await repo.consenting("profiling", T0 + timedelta(minutes=30), ["c"]) == ["c"]  # before expiry


SOURCES = ("chat", "web:form", *SALE_OPT_OUT_SOURCES)
_examples = itertools.count()


@st.composite
def consent_histories(draw: st.DrawFn) -> tuple[list[tuple[int, str, ConsentState, str, int | None]], int]:
    """Records (user, purpose, state, source, expiry in hours from T0) in the order they are made, and a clock in
    hours from T0. Purposes include the contract one; sources the sale opt-out signals."""
    # Weighted so that the interplay that matters (an opt-out beside a marketing grant, a lapsing grant) is common.
    purposes = [*PURPOSE_NAMES, "marketing", "marketing", "profiling"]
    states: tuple[ConsentState, ...] = ("granted", "granted", "denied", "withdrawn")
    record = st.tuples(st.integers(0, 2), st.sampled_from(purposes), st.sampled_from(states),
                       st.sampled_from(SOURCES), st.none() | st.integers(-6, 30))
    return draw(st.lists(record, max_size=24)), draw(st.integers(-2, 30))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(example=consent_histories())
async def test_the_sql_selection_of_consenting_users_is_the_domain_rule(
        store: SQLStore, example: tuple[list[tuple[int, str, ConsentState, str, int | None]], int]) -> None:
    records, hours = example
    n = next(_examples)
    users = [f"h{n}-{i}" for i in range(3)]
    await make_profiles(store, *users)
    history: dict[str, list[ConsentRecord]] = {u: [] for u in users}
    for minute, (who, purpose, state, source, expiry) in enumerate(records):
        expires = None if expiry is None else T0 + timedelta(hours=expiry)
        history[users[who]].append(consent(purpose, state, source, minute, users[who], expires_at=expires))
    async with store.write() as repo:
        for minute in range(len(records)):  # in the order they were made: ids follow it
            for user in users:
                for r in history[user]:
                    if r.recorded_at == T0 + timedelta(minutes=minute):
                        await repo.add_consent(r)
    now = T0 + timedelta(hours=hours)
    asked = [*users, f"h{n}-nobody"]
    async with store.read() as repo:
        for purpose in PURPOSE_NAMES:
            expected = sorted(u for u in asked if fold(u, history.get(u, [])).decide(purpose, now).allowed)
            assert await repo.consenting(purpose, now, asked) == expected, (purpose, records, hours)
            assert (await repo.consents(users[0])).decide(purpose, now) == fold(
                users[0], history[users[0]]).decide(purpose, now)


async def test_preferences_reads_full_partial_and_lean(store: SQLStore) -> None:
    await make_profiles(store, "u1", "u2")
    prefs = [Preference("note:lavender", "implicit", 0.5, T0, 3, (1, 2, 3), T0),
             Preference("item:candle-1", "implicit", 1.0, T0, 1, (1,), T0),
             Preference("note:oud", "explicit", -1.0, T0, 1, (), T0)]
    async with store.write() as repo:
        await repo.put_preferences("u1", prefs)
    async with store.read() as repo:
        assert sorted(await repo.preferences("u1"), key=lambda p: p.token) == sorted(prefs, key=lambda p: p.token)
        assert [p.token for p in await repo.preferences("u1", ["note:oud", "x"])] == ["note:oud"]
        lean = await repo.attribute_weights_of(["u1", "u2"])
        on = await repo.attribute_weights_of(["u1", "u2"], tokens=["note:oud", "item:candle-1", "note:none"])
        assert await repo.attribute_weights_of(["u1"], tokens=[]) == {"u1": []}
    assert lean["u2"] == []
    assert sorted((p.token, p.source, p.weight, p.ref_at) for p in lean["u1"]) == [
        ("note:lavender", "implicit", 0.5, T0), ("note:oud", "explicit", -1.0, T0)]  # no item tokens
    assert on["u2"] == [] and [(p.token, p.weight) for p in on["u1"]] == [("note:oud", -1.0)]


# -- SQLite only -----------------------------------------------------------------------------------------------

async def test_sqlite_checkpoints_the_log_off_the_call_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commits never checkpoint (that would stall the call that crosses the threshold); the checkpointer thread
    copies the log back into the database file, and closing leaves one file."""
    monkeypatch.setattr(SQLiteDatabase, "checkpoint_seconds", 0.05)
    path = tmp_path / "store.db"
    store = SQLStore.sqlite(path)
    await store.migrate()
    async with store.read() as repo:
        assert (await repo.conn.execute(sa.text("PRAGMA wal_autocheckpoint"))).scalar() == 0

    def in_the_file() -> int:
        """Profiles the database file itself holds, the log ignored (a torn read counts as none)."""
        with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as conn:
            try:
                return int(conn.execute("SELECT count(*) FROM profiles").fetchone()[0])
            except sqlite3.DatabaseError:
                return -1

    try:
        await make_profiles(store, *[f"u{i}" for i in range(300)])
        for _ in range(400):  # waiting for the thread, up to 20 s; not a timing assertion
            if in_the_file() == 300:
                break
            await anyio.sleep(0.05)
        assert in_the_file() == 300
    finally:
        await store.close()
    assert not path.with_name("store.db-wal").exists()
