"""Retention on both databases, with a controlled clock: behavioural data older than ``retention_days`` is purged,
what was learned from it is recomputed from what remains (weights, vectors, the similarity index, the shared
model), a dry run changes nothing, and the command line reports per store. Consent past its expiry stops counting:
``tests/consent/test_consent.py::test_expired_grant_is_no_consent``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
import sqlalchemy as sa
import yaml

from mnky_profiles.server.cli import main
from mnky_profiles.store.sql import schema
from mnky_profiles.usecases.item_model import digests

from ..conftest import FakeClock, World, open_world
from ..support.clients import call
from ..support.gate import snapshot

pytestmark = pytest.mark.anyio

RETENTION = 30
LATER = 10  # days the clock moves after recording: events recorded more than 20 days back then fall out
# (user, event type, item, days before recording); those more than 20 days back are past retention after LATER.
EVENTS = [
    ("mixed", "view", "candle-lavender", 25), ("mixed", "purchase", "candle-lavender", 24),
    ("mixed", "view", "perfume-oud", 5), ("mixed", "rating", "bath-citrus", 2),
    ("old-only", "purchase", "bath-citrus", 28),
    ("fresh", "view", "candle-lavender", 3), ("fresh", "purchase", "guide-sleep", 1),
]
USERS = ("mixed", "old-only", "fresh")
PAST = sum(1 for *_, days in EVENTS if days > LATER * 2)


async def populate(world: World, events: list[tuple[str, str, str, int]]) -> None:
    async with world.client("privacy-officer") as c:
        for user in USERS:
            await call(c, "update_profile", user_id=user, create=True, attributes={"language": "en"})
            for purpose in ("personalization", "recommendation", "profiling"):
                await call(c, "record_consent", user_id=user, purpose=purpose, granted=True, source="test")
        for user, event_type, item, days in events:
            props = {"rating": 4} if event_type == "rating" else {}
            await call(c, "record_event", user_id=user, event_type=event_type, item_id=item, properties=props,
                       occurred_at=(world.clock.now() - timedelta(days=days)).isoformat())


async def learned(world: World) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Every user's preferences (without the ids of their evidence) and stored vectors."""
    async with world.runtime.store.read() as repo:
        prefs = {u: sorted((p.token, p.source, round(p.weight, 9), p.ref_at, p.evidence_count)
                           for p in await repo.preferences(u)) for u in USERS}
        vectors = {v.user_id: np.frombuffer(v.data, "<f4") for v in await repo.user_vectors(list(USERS))}
    return prefs, vectors


async def event_times(world: World) -> list[datetime]:
    async with world.runtime.store.read() as repo:
        rows = (await repo.conn.execute(sa.select(schema.events.c.occurred_at))).all()  # type: ignore[attr-defined]
    return [r[0] for r in rows]


def start_clock(now: datetime) -> FakeClock:
    clock = FakeClock()
    clock.current = now
    return clock


async def test_purge_removes_old_events_and_relearns_from_the_rest(backend: str, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    settings = {"user_profiling": {"retention_days": RETENTION}}
    # What learning from the remaining events alone gives: the same people, without the old events.
    async with open_world(backend, tmp_path / "kept", start_clock(now), **settings) as kept:
        await populate(kept, [e for e in EVENTS if e[3] <= LATER * 2])
        kept.clock.advance(days=LATER)
        expected_prefs, expected_vectors = await learned(kept)

    async with open_world(backend, tmp_path / "purged", start_clock(now), **settings) as world:
        await populate(world, EVENTS)
        model = world.runtime.usecases.model
        await model.fit()
        assert model.current is not None and model.current.learned_from(int(digests(["old-only"])[0]))
        world.clock.advance(days=LATER)
        before_prefs, before_vectors = await learned(world)
        assert before_prefs["mixed"] != expected_prefs["mixed"] and before_prefs["old-only"]
        index = world.runtime.index
        assert set(await index.fetch(list(USERS))) == set(USERS)

        # A dry run counts what would go and writes nothing.
        rows = await snapshot(world.runtime)
        plan = await world.runtime.usecases.retention.plan()
        assert plan.removed == {"events": PAST, "pending_events": 0} and plan.users == 2
        assert await snapshot(world.runtime) == rows
        assert set(await index.fetch(list(USERS))) == set(USERS)

        seen: list[tuple[int, int]] = []
        report = await world.runtime.usecases.retention.purge(progress=lambda done, total: seen.append((done, total)))
        assert report.removed == plan.removed and report.users == 2 and report.model_refitted
        assert seen == [(2, 2)]
        cutoff = world.clock.now() - timedelta(days=RETENTION)
        times = await event_times(world)
        assert len(times) == len(EVENTS) - PAST and min(times) >= cutoff

        # Weights and vectors are what learning from the remaining events alone gives.
        prefs, vectors = await learned(world)
        assert prefs == expected_prefs
        assert prefs["old-only"] == [] and "old-only" not in vectors
        assert set(vectors) == set(expected_vectors) == {"mixed", "fresh"}
        for user, vector in vectors.items():
            np.testing.assert_allclose(vector, expected_vectors[user], atol=1e-6)
        assert not np.allclose(vectors["mixed"], before_vectors["mixed"], atol=1e-4)
        np.testing.assert_allclose(vectors["fresh"], before_vectors["fresh"], atol=1e-6)  # untouched

        # The index follows the vectors; the shared model no longer learns from the purged history.
        indexed = await index.fetch(list(USERS))
        assert set(indexed) == {"mixed", "fresh"}
        np.testing.assert_allclose(indexed["mixed"], vectors["mixed"], atol=1e-5)
        assert model.current is not None and not model.current.learned_from(int(digests(["old-only"])[0]))

        # Nothing is left to purge.
        again = await world.runtime.usecases.retention.purge()
        assert again.removed == {"events": 0, "pending_events": 0} and again.users == 0
        assert not again.model_refitted


async def test_purge_takes_queued_signals_with_their_events(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    async with open_world(backend, tmp_path, clock, user_profiling={"retention_days": RETENTION,
                                                                    "update_frequency": "batch"}) as world:
        await populate(world, [e for e in EVENTS if e[0] == "mixed"])
        async with world.runtime.store.read() as repo:
            assert len(await repo.pending_events(100)) == 4
        world.clock.advance(days=LATER)
        plan = await world.runtime.usecases.retention.plan()
        assert plan.removed == {"events": 2, "pending_events": 2} and plan.users == 1
        report = await world.runtime.usecases.retention.purge()
        assert report.removed == plan.removed
        async with world.runtime.store.read() as repo:
            assert await repo.pending_events(100) == []  # the purged ones gone, the rest learned
            tokens = {p.token for p in await repo.preferences("mixed") if p.source == "implicit"}
        assert "note:oud" in tokens and "note:bergamot" in tokens
        assert "note:lavender" not in tokens  # only the purged events spoke of the candle


def test_the_command_line_reports_then_purges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    clock = start_clock(now - timedelta(days=RETENTION + LATER))  # the command runs on the real clock

    async def record() -> None:
        async with open_world("sqlite", tmp_path, clock, user_profiling={"retention_days": RETENTION}) as world:
            await populate(world, [("old-only", "purchase", "bath-citrus", 0)])
            clock.current = now - timedelta(days=1)
            await populate(world, [("fresh", "view", "candle-lavender", 0)])

    anyio.run(record)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "user_profiling": {"retention_days": RETENTION}}))
    assert main(["retention", "--dry-run", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "database.events: would remove 1" in out and "database.pending_events: would remove 0" in out
    assert "1 users would be recomputed" in out

    assert main(["retention", "--config", str(config)]) == 0
    captured = capsys.readouterr()
    assert "database.events: removed 1" in captured.out and "shared model: refitted" in captured.out
    assert "retention: 1/1 users recomputed" in captured.err
    assert main(["retention", "--dry-run", "--config", str(config)]) == 0
    assert "database.events: would remove 0" in capsys.readouterr().out
    with sqlite3.connect(tmp_path / "mnky-profiles.db") as db:
        assert db.execute("SELECT user_id FROM events").fetchall() == [("fresh",)]
