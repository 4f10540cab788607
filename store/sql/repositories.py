"""The repositories of one transaction, written once for both databases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ...domain.catalog import Item
from ...domain.consent import SALE_OPT_OUT_SOURCES, ConsentRecord, SubjectConsents
from ...domain.events import Event
from ...domain.profiles import Attribute
from . import schema as t
from .database import Conn

# Statements built once; SQLAlchemy caches their compiled form per dialect.
_EXISTS = sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id == sa.bindparam("u"))
_ATTRS = sa.select(t.attributes).where(t.attributes.c.user_id == sa.bindparam("u"))
_COUNTS = (sa.select(t.events.c.event_type, sa.func.count()).where(t.events.c.user_id == sa.bindparam("u"))
           .group_by(t.events.c.event_type))
_RECENT = (sa.select(t.events.c.event_type, t.events.c.item_id, t.events.c.properties, t.events.c.occurred_at)
           .where(t.events.c.user_id == sa.bindparam("u"))
           .order_by(t.events.c.occurred_at.desc(), t.events.c.id.desc()).limit(sa.bindparam("n")))
_CONSENTS = sa.select(t.consents).where(t.consents.c.user_id == sa.bindparam("u")).order_by(t.consents.c.id)


def upsert(dialect: str, table: sa.Table) -> Any:
    return (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))


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
            stmt = sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id.in_(unique[i:i + 500]))
            found.update(r[0] for r in (await self.conn.execute(stmt)).all())
        return found

    async def create_profile(self, user_id: str, at: datetime) -> None:
        await self.conn.execute(t.profiles.insert(), {"user_id": user_id, "created_at": at, "updated_at": at})

    async def attributes(self, user_id: str) -> list[Attribute]:
        rows = (await self.conn.execute(_ATTRS, {"u": user_id})).all()
        return [Attribute(r.field, r.value, r.source, r.confidence, r.observed_at) for r in rows]

    async def put_attributes(self, user_id: str, attributes: Sequence[Attribute]) -> None:
        if not attributes:
            return
        stmt = upsert(self.conn.dialect, t.attributes)
        stmt = stmt.on_conflict_do_update(
            index_elements=["user_id", "field", "source"],
            set_={"value": stmt.excluded.value, "confidence": stmt.excluded.confidence,
                  "observed_at": stmt.excluded.observed_at},
        )
        await self.conn.execute(stmt, [
            {"user_id": user_id, "field": a.field, "source": a.source, "value": a.value,
             "confidence": a.confidence, "observed_at": a.observed_at} for a in attributes
        ])
        latest = max(a.observed_at for a in attributes)
        await self.conn.execute(
            t.profiles.update().where(t.profiles.c.user_id == user_id).values(updated_at=latest))

    async def user_ids(self, prefix: str, limit: int) -> list[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        stmt = (sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id.like(escaped + "%", escape="\\"))
                .order_by(t.profiles.c.user_id).limit(limit))
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
        return {r[0]: r[1] for r in (await self.conn.execute(_COUNTS, {"u": user_id})).all()}

    async def recent_events(self, user_id: str, limit: int) -> list[Event]:
        rows = (await self.conn.execute(_RECENT, {"u": user_id, "n": limit})).all()
        return [Event(user_id, r.event_type, r.occurred_at, r.item_id, r.properties) for r in rows]

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
        unique = sorted(set(item_ids))
        if not unique:
            return set()
        stmt = sa.select(t.items.c.item_id).where(t.items.c.item_id.in_(unique))
        return {r[0] for r in (await self.conn.execute(stmt)).all()}

    async def put_items(self, items: Sequence[Item]) -> None:
        if not items:
            return
        stmt = upsert(self.conn.dialect, t.items)
        stmt = stmt.on_conflict_do_update(
            index_elements=["item_id"],
            set_={"kind": stmt.excluded.kind, "title": stmt.excluded.title, "attributes": stmt.excluded.attributes},
        )
        await self.conn.execute(stmt, [
            {"item_id": i.item_id, "kind": i.kind, "title": i.title, "attributes": i.attributes} for i in items
        ])

    async def items(self, item_ids: Sequence[str]) -> list[Item]:
        unique = sorted(set(item_ids))
        if not unique:
            return []
        stmt = sa.select(t.items).where(t.items.c.item_id.in_(unique))
        return [Item(r.item_id, r.kind, r.title, r.attributes) for r in (await self.conn.execute(stmt)).all()]
