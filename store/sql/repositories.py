"""The repositories of one transaction, written once for both databases."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ...domain.catalog import Item
from ...domain.consent import SALE_OPT_OUT_SOURCES, ConsentRecord, SubjectConsents
from ...domain.events import Event
from ...domain.preferences import ITEM_FACET, Preference, StoredVector
from ...domain.profiles import Attribute
from . import schema as t
from .database import Conn
from .schema import UTCDateTime

# Statements built once; SQLAlchemy caches their compiled form per dialect.

def _consenting() -> Any:
    c = t.consents
    latest = (sa.select(c.c.user_id, sa.func.max(c.c.id).label("id"))
              .where(c.c.purpose == sa.bindparam("purpose"), c.c.source.not_in(list(SALE_OPT_OUT_SOURCES)),
                     c.c.user_id.in_(sa.bindparam("ids", expanding=True)))
              .group_by(c.c.user_id).subquery())
    return (sa.select(c.c.user_id).join(latest, latest.c.id == c.c.id)
            .where(c.c.state == "granted",
                   sa.or_(c.c.expires_at.is_(None), c.c.expires_at > sa.bindparam("now", type_=UTCDateTime()))))


_CONSENTING = _consenting()  # built once: building the grouped subquery cost ~1 ms per call
_PROFILES_IN = sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id.in_(sa.bindparam("ids", expanding=True)))
_ITEMS_IN = sa.select(t.items.c.item_id).where(t.items.c.item_id.in_(sa.bindparam("ids", expanding=True)))
_EXISTS = sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id == sa.bindparam("u"))
_ATTRS = sa.select(t.attributes).where(t.attributes.c.user_id == sa.bindparam("u"))
_COUNTS = (sa.select(t.events.c.event_type, sa.func.count().label("n")).where(t.events.c.user_id == sa.bindparam("u"))
           .group_by(t.events.c.event_type))
_RECENT = (sa.select(t.events.c.event_type, t.events.c.item_id, t.events.c.properties, t.events.c.occurred_at)
           .where(t.events.c.user_id == sa.bindparam("u"))
           .order_by(t.events.c.occurred_at.desc(), t.events.c.id.desc()).limit(sa.bindparam("n")))
# The behaviour summary reads only the type, item and time, and a mood check-in's properties: decoding every
# event's properties JSON was the largest cost of a profile read for users with long histories.
_RECENT_LEAN = (sa.select(t.events.c.event_type, t.events.c.item_id,
                          sa.case((t.events.c.event_type == "mood_check_in", t.events.c.properties),
                                  else_=sa.null()).label("properties"), t.events.c.occurred_at)
                .where(t.events.c.user_id == sa.bindparam("u"))
                .order_by(t.events.c.occurred_at.desc(), t.events.c.id.desc()).limit(sa.bindparam("n")))
_PREFS = sa.select(t.preferences).where(t.preferences.c.user_id == sa.bindparam("u"))
_WEIGHTS_OF = (sa.select(t.preferences.c.user_id, t.preferences.c.token, t.preferences.c.source,
                         t.preferences.c.weight, t.preferences.c.ref_at)
               .where(t.preferences.c.user_id.in_(sa.bindparam("ids", expanding=True)),
                      t.preferences.c.token.not_like(ITEM_FACET + ":%")))
_WEIGHTS_OF_ON = _WEIGHTS_OF.where(t.preferences.c.token.in_(sa.bindparam("tokens", expanding=True)))
_PREFS_ON = _PREFS.where(t.preferences.c.token.in_(sa.bindparam("tokens", expanding=True)))
_VECTOR = sa.select(t.user_vectors).where(t.user_vectors.c.user_id == sa.bindparam("u"))
_CONSENTS = sa.select(t.consents).where(t.consents.c.user_id == sa.bindparam("u")).order_by(t.consents.c.id)


def _preference(r: Any) -> Preference:
    return Preference(r.token, r.source, r.weight, r.ref_at, r.evidence_count, tuple(r.evidence), r.updated_at)


def insert_for(dialect: str, table: sa.Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)


@functools.cache
def upsert(dialect: str, table: sa.Table, keys: tuple[str, ...], updates: tuple[str, ...]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO UPDATE SET updates, built once per dialect (it runs on hot paths)."""
    stmt = insert_for(dialect, table)
    return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in updates})


def _consent(row: Any) -> ConsentRecord:
    return ConsentRecord(user_id=row.user_id, purpose=row.purpose, state=row.state, source=row.source,
                         recorded_at=row.recorded_at, evidence=row.evidence, expires_at=row.expires_at)


def fold_consents(user_id: str, history: list[ConsentRecord]) -> SubjectConsents:
    """The latest ordinary record per purpose, and the sale opt-outs still standing, from oldest-first history."""
    current: dict[str, ConsentRecord] = {}
    opt_outs: dict[str, ConsentRecord] = {}
    for record in history:
        if record.source in SALE_OPT_OUT_SOURCES:
            if record.state == "granted":
                opt_outs.pop(record.source, None)
            else:
                opt_outs[record.source] = record
        else:
            current[record.purpose] = record
    return SubjectConsents(user_id, current, tuple(opt_outs.values()))


class SQLRepositories:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def profile_exists(self, user_id: str) -> bool:
        return (await self.conn.execute(_EXISTS, {"u": user_id})).first() is not None

    async def existing_profiles(self, user_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(user_ids))
        for i in range(0, len(unique), 500):
            found.update(r[0] for r in (await self.conn.execute(_PROFILES_IN, {"ids": unique[i:i + 500]})).all())
        return found

    async def create_profile(self, user_id: str, at: datetime) -> None:
        await self.conn.execute(t.profiles.insert(), {"user_id": user_id, "created_at": at, "updated_at": at})

    async def attributes(self, user_id: str) -> list[Attribute]:
        rows = (await self.conn.execute(_ATTRS, {"u": user_id})).all()
        return [Attribute(r.field, r.value, r.source, r.confidence, r.observed_at) for r in rows]

    async def put_attributes(self, user_id: str, attributes: Sequence[Attribute]) -> None:
        if not attributes:
            return
        stmt = upsert(self.conn.dialect, t.attributes, ("user_id", "field", "source"),
                      ("value", "confidence", "observed_at"))
        await self.conn.execute(stmt, [
            {"user_id": user_id, "field": a.field, "source": a.source, "value": a.value,
             "confidence": a.confidence, "observed_at": a.observed_at} for a in attributes
        ])
        latest = max(a.observed_at for a in attributes)
        await self.conn.execute(
            t.profiles.update().where(t.profiles.c.user_id == user_id).values(updated_at=latest))

    async def user_ids(self, prefix: str, limit: int) -> list[str]:
        column = t.profiles.c.user_id
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # LIKE narrows the search (and can use the key's index); SQLite's LIKE ignores ASCII case, so the exact
        # prefix comparison keeps the match case-sensitive on both databases, like every other lookup by id.
        stmt = (sa.select(column)
                .where(column.like(escaped + "%", escape="\\"), sa.func.substr(column, 1, len(prefix)) == prefix)
                .order_by(column).limit(limit))
        return [r[0] for r in (await self.conn.execute(stmt)).all()]

    async def add_events(self, events: Sequence[Event], recorded_at: datetime) -> list[int]:
        if not events:
            return []
        stmt = t.events.insert().returning(t.events.c.id, sort_by_parameter_order=True)
        rows = (await self.conn.execute(stmt, [
            {"user_id": e.user_id, "event_type": e.event_type, "item_id": e.item_id, "properties": e.properties,
             "occurred_at": e.occurred_at, "recorded_at": recorded_at} for e in events
        ])).all()
        return [r[0] for r in rows]

    async def event_counts(self, user_id: str) -> dict[str, int]:
        return {r.event_type: r.n for r in (await self.conn.execute(_COUNTS, {"u": user_id})).all()}

    async def recent_events(self, user_id: str, limit: int, properties: bool = True) -> list[Event]:
        """Newest first. Without ``properties`` only mood check-ins carry theirs (the others get ``{}``)."""
        rows = (await self.conn.execute(_RECENT if properties else _RECENT_LEAN, {"u": user_id, "n": limit})).all()
        return [Event(user_id, r.event_type, r.occurred_at, r.item_id, r.properties or {}) for r in rows]

    async def consent_history(self, user_id: str) -> list[ConsentRecord]:
        return [_consent(r) for r in (await self.conn.execute(_CONSENTS, {"u": user_id})).all()]

    async def consents(self, user_id: str) -> SubjectConsents:
        return fold_consents(user_id, await self.consent_history(user_id))

    async def add_consent(self, record: ConsentRecord) -> None:
        await self.conn.execute(t.consents.insert(), {
            "user_id": record.user_id, "purpose": record.purpose, "state": record.state, "source": record.source,
            "evidence": record.evidence, "recorded_at": record.recorded_at, "expires_at": record.expires_at,
        })

    async def existing_items(self, item_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        unique = sorted(set(item_ids))
        for i in range(0, len(unique), 500):
            found.update(r[0] for r in (await self.conn.execute(_ITEMS_IN, {"ids": unique[i:i + 500]})).all())
        return found

    async def put_items(self, items: Sequence[Item]) -> None:
        if not items:
            return
        stmt = upsert(self.conn.dialect, t.items, ("item_id",), ("kind", "title", "attributes"))
        await self.conn.execute(stmt, [
            {"item_id": i.item_id, "kind": i.kind, "title": i.title, "attributes": i.attributes} for i in items
        ])

    async def items(self, item_ids: Sequence[str]) -> list[Item]:
        unique = sorted(set(item_ids))
        if not unique:
            return []
        stmt = sa.select(t.items).where(t.items.c.item_id.in_(unique))
        return [Item(r.item_id, r.kind, r.title, r.attributes) for r in (await self.conn.execute(stmt)).all()]

    # -- learning ------------------------------------------------------------------------------------------
    async def preferences(self, user_id: str, tokens: Sequence[str] | None = None) -> list[Preference]:
        """The user's preferences; only those on ``tokens`` when given (what a new signal touches)."""
        if tokens is None:
            rows = (await self.conn.execute(_PREFS, {"u": user_id})).all()
        else:
            rows = (await self.conn.execute(_PREFS_ON, {"u": user_id, "tokens": sorted(set(tokens))})).all()
        return [_preference(r) for r in rows]

    async def preferences_of(self, user_ids: Sequence[str], evidence: bool = True) -> dict[str, list[Preference]]:
        """Every preference of these users. Without ``evidence`` the evidence ids are left unread (empty):
        enough for weights and vectors, and much cheaper."""
        found: dict[str, list[Preference]] = {u: [] for u in user_ids}
        unique = sorted(set(user_ids))
        columns = list(t.preferences.c) if evidence else [c for c in t.preferences.c if c.name != "evidence"]
        for i in range(0, len(unique), 500):
            stmt = sa.select(*columns).where(t.preferences.c.user_id.in_(unique[i:i + 500]))
            for r in (await self.conn.execute(stmt)).all():
                found[r.user_id].append(_preference(r) if evidence else Preference(
                    r.token, r.source, r.weight, r.ref_at, r.evidence_count, (), r.updated_at))
        return found

    async def attribute_weights_of(self, user_ids: Sequence[str],
                                   tokens: Sequence[str] | None = None) -> dict[str, list[Preference]]:
        """Only what vectors and explanations need: the attribute-token weights (no item tokens, no evidence),
        all of them or only those on ``tokens``."""
        found: dict[str, list[Preference]] = {u: [] for u in user_ids}
        if tokens is not None and not tokens:
            return found
        unique = sorted(set(user_ids))
        on = {} if tokens is None else {"tokens": sorted(set(tokens))}
        for i in range(0, len(unique), 500):
            result: Any = await self.conn.execute(_WEIGHTS_OF if tokens is None else _WEIGHTS_OF_ON,
                                                  {"ids": unique[i:i + 500], **on})
            for r in result:  # by position: a few hundred rows a call, and named access costs more
                found[r[0]].append(Preference(r[1], r[2], r[3], r[4], 0, (), r[4]))
        return found

    async def put_preferences(self, user_id: str, preferences: Sequence[Preference]) -> None:
        if not preferences:
            return
        stmt = upsert(self.conn.dialect, t.preferences, ("user_id", "token", "source"),
                      ("weight", "ref_at", "evidence_count", "evidence", "updated_at"))
        await self.conn.execute(stmt, [
            {"user_id": user_id, "token": p.token, "source": p.source, "weight": p.weight, "ref_at": p.ref_at,
             "evidence_count": p.evidence_count, "evidence": list(p.evidence), "updated_at": p.updated_at}
            for p in preferences
        ])

    async def delete_preferences(self, user_id: str, source: str, tokens: Sequence[str]) -> None:
        if tokens:
            await self.conn.execute(t.preferences.delete().where(
                t.preferences.c.user_id == user_id, t.preferences.c.source == source,
                t.preferences.c.token.in_(sorted(set(tokens)))))

    async def user_vector(self, user_id: str) -> StoredVector | None:
        row = (await self.conn.execute(_VECTOR, {"u": user_id})).first()
        return None if row is None else StoredVector(row.user_id, row.model, row.vector, row.as_of)

    async def user_vectors(self, user_ids: Sequence[str]) -> list[StoredVector]:
        out: list[StoredVector] = []
        unique = sorted(set(user_ids))
        for i in range(0, len(unique), 500):
            stmt = sa.select(t.user_vectors).where(t.user_vectors.c.user_id.in_(unique[i:i + 500]))
            out += [StoredVector(r.user_id, r.model, r.vector, r.as_of)
                    for r in (await self.conn.execute(stmt)).all()]
        return out

    async def put_user_vector(self, vector: StoredVector) -> None:
        stmt = upsert(self.conn.dialect, t.user_vectors, ("user_id",), ("model", "vector", "as_of"))
        await self.conn.execute(stmt, {"user_id": vector.user_id, "model": vector.model, "vector": vector.data,
                                       "as_of": vector.as_of})

    async def delete_user_vector(self, user_id: str) -> None:
        await self.conn.execute(t.user_vectors.delete().where(t.user_vectors.c.user_id == user_id))

    async def queue_events(self, event_ids: Sequence[int]) -> None:
        if event_ids:
            await self.conn.execute(t.pending_events.insert(), [{"event_id": i} for i in event_ids])

    async def pending_events(self, limit: int) -> list[tuple[int, Event]]:
        stmt = (sa.select(t.events).join(t.pending_events, t.pending_events.c.event_id == t.events.c.id)
                .order_by(t.events.c.id).limit(limit))
        return [(r.id, Event(r.user_id, r.event_type, r.occurred_at, r.item_id, r.properties))
                for r in (await self.conn.execute(stmt)).all()]

    async def dequeue_events(self, event_ids: Sequence[int]) -> None:
        for i in range(0, len(event_ids), 500):
            await self.conn.execute(t.pending_events.delete().where(
                t.pending_events.c.event_id.in_(list(event_ids[i:i + 500]))))

    async def pending_count(self) -> int:
        return int((await self.conn.execute(sa.select(sa.func.count()).select_from(t.pending_events))).scalar_one())

    async def all_items(self) -> list[Item]:
        rows = (await self.conn.execute(sa.select(t.items).order_by(t.items.c.item_id))).all()
        return [Item(r.item_id, r.kind, r.title, r.attributes) for r in rows]

    async def item_events(self, user_id: str, event_types: Sequence[str]) -> list[tuple[str, str, Any]]:
        """(item_id, event_type, properties) of the user's item events of these types."""
        stmt = (sa.select(t.events.c.item_id, t.events.c.event_type, t.events.c.properties)
                .where(t.events.c.user_id == user_id, t.events.c.event_type.in_(list(event_types)),
                       t.events.c.item_id.is_not(None)))
        return [(r.item_id, r.event_type, r.properties) for r in (await self.conn.execute(stmt)).all()]

    async def consenting(self, purpose: str, now: datetime, user_ids: Sequence[str]) -> list[str]:
        """Those of ``user_ids`` whose latest ordinary record for ``purpose`` is an unexpired grant, sorted.

        Sale opt-out signals are not considered here: callers use this for purposes they do not cover. To walk
        everyone, page through ``profile_ids`` and ask per page (a grouped query over all users per page would
        make the walk quadratic).
        """
        found: list[str] = []
        unique = sorted(set(user_ids))
        for i in range(0, len(unique), 500):
            rows = (await self.conn.execute(_CONSENTING, {"purpose": purpose, "now": now,
                                                          "ids": unique[i:i + 500]})).all()
            found += [r.user_id for r in rows]
        return sorted(found)

    async def profile_ids(self, after: str, limit: int) -> list[str]:
        stmt = (sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id > after)
                .order_by(t.profiles.c.user_id).limit(limit))
        return [r[0] for r in (await self.conn.execute(stmt)).all()]

    async def events_of(self, user_ids: Sequence[str]) -> list[tuple[int, Event]]:
        """Every stored event of these users, oldest first."""
        out: list[tuple[int, Event]] = []
        unique = sorted(set(user_ids))
        for i in range(0, len(unique), 500):
            stmt = (sa.select(t.events).where(t.events.c.user_id.in_(unique[i:i + 500]))
                    .order_by(t.events.c.id))
            out += [(r.id, Event(r.user_id, r.event_type, r.occurred_at, r.item_id, r.properties))
                    for r in (await self.conn.execute(stmt)).all()]
        return out

    async def clear_preferences(self, user_ids: Sequence[str], source: str) -> None:
        unique = sorted(set(user_ids))
        for i in range(0, len(unique), 500):
            await self.conn.execute(t.preferences.delete().where(
                t.preferences.c.user_id.in_(unique[i:i + 500]), t.preferences.c.source == source))
