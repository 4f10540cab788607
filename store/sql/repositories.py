"""The repositories of one transaction, written once for both databases."""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ...domain.catalog import Item
from ...domain.consent import STANDING_SOURCES, ConsentRecord, SubjectConsents, blocking_sources, fold
from ...domain.events import Event
from ...domain.preferences import ITEM_FACET, Preference, StoredVector
from ...domain.profiles import Attribute, NewSubject
from ...domain.purposes import CONSENT_PURPOSES, PURPOSES
from ...domain.requests import SubjectRequest
from . import schema as t
from .database import Conn
from .schema import UTCDateTime

T = TypeVar("T", str, int)
IN_LIST = 500  # values per IN list: well inside every driver's parameter limit
BULK_ROWS = 5000  # rows per multi-row insert of a bulk load


def chunks(values: Iterable[T]) -> Iterator[list[T]]:
    """The distinct values, sorted, in lists of at most ``IN_LIST`` (one IN query each)."""
    unique = sorted(set(values))
    for i in range(0, len(unique), IN_LIST):
        yield unique[i:i + IN_LIST]


# Statements built once; SQLAlchemy caches their compiled form per dialect.

def _consenting(blocking: tuple[str, ...]) -> Any:
    """``domain.consent.decide`` for consent-based purposes, as one grouped query over a list of users.

    The latest record of an ordinary source for the purpose must be an unexpired grant, and no record of a
    ``blocking`` source may stand (such a source's latest record, of any purpose, that is not a grant).
    """
    c = t.consents
    latest = (sa.select(c.c.user_id, sa.func.max(c.c.id).label("id"))
              .where(c.c.purpose == sa.bindparam("purpose"), c.c.source.not_in(list(STANDING_SOURCES)),
                     c.c.user_id.in_(sa.bindparam("ids", expanding=True)))
              .group_by(c.c.user_id).subquery())
    stmt = (sa.select(c.c.user_id).join(latest, latest.c.id == c.c.id)
            .where(c.c.state == "granted",
                   sa.or_(c.c.expires_at.is_(None), c.c.expires_at > sa.bindparam("now", type_=UTCDateTime()))))
    if not blocking:
        return stmt
    signal, newer = t.consents.alias("signal"), t.consents.alias("newer")
    standing = (sa.select(signal.c.id)
                .where(signal.c.user_id == c.c.user_id, signal.c.source.in_(list(blocking)),
                       signal.c.state != "granted",
                       ~sa.exists().where(newer.c.user_id == signal.c.user_id, newer.c.source == signal.c.source,
                                          newer.c.id > signal.c.id)))
    return stmt.where(~sa.exists(standing))


# Built once: building the grouped subquery cost ~1 ms per call.
_CONSENTING = {purpose: _consenting(blocking_sources(purpose)) for purpose in CONSENT_PURPOSES}
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
_CONSENTS = sa.select(t.consents).where(t.consents.c.user_id == sa.bindparam("u")).order_by(t.consents.c.id)


def _preference(r: Any) -> Preference:
    return Preference(r.token, r.source, r.weight, r.ref_at, r.evidence_count, tuple(r.evidence), r.updated_at)


def _key_row(user_id: str) -> dict[str, Any]:
    return {"user_id": user_id, "secret": secrets.token_hex(32)}


def _attribute_row(user_id: str, a: Attribute) -> dict[str, Any]:
    return {"user_id": user_id, "field": a.field, "source": a.source, "value": a.value, "confidence": a.confidence,
            "observed_at": a.observed_at}


def _event_row(e: Event, recorded_at: datetime) -> dict[str, Any]:
    return {"user_id": e.user_id, "event_type": e.event_type, "item_id": e.item_id, "properties": e.properties,
            "occurred_at": e.occurred_at, "recorded_at": recorded_at}


def _consent_row(r: ConsentRecord) -> dict[str, Any]:
    return {"user_id": r.user_id, "purpose": r.purpose, "state": r.state, "source": r.source,
            "evidence": r.evidence, "recorded_at": r.recorded_at, "expires_at": r.expires_at}


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


_REQUEST_FIELDS = ("user_id", "subject", "kind", "regime", "requested_by", "verification", "status", "reason",
                   "details", "created_at", "updated_at", "due_at", "receipt")


def _request(row: Any) -> SubjectRequest:
    return SubjectRequest(id=int(row.id), **{f: getattr(row, f) for f in _REQUEST_FIELDS})


class SQLRepositories:
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    async def profile_exists(self, user_id: str) -> bool:
        return (await self.conn.execute(_EXISTS, {"u": user_id})).first() is not None

    async def existing_profiles(self, user_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(user_ids):
            found.update(r[0] for r in (await self.conn.execute(_PROFILES_IN, {"ids": chunk})).all())
        return found

    async def create_profile(self, user_id: str, at: datetime) -> None:
        await self.conn.execute(t.profiles.insert(), {"user_id": user_id, "created_at": at, "updated_at": at})
        await self.conn.execute(t.subject_keys.insert(), _key_row(user_id))

    async def import_subjects(self, subjects: Sequence[NewSubject]) -> None:
        rows: dict[sa.Table, list[dict[str, Any]]] = {t.profiles: [], t.subject_keys: [], t.attributes: [],
                                                      t.events: [], t.consents: []}
        for s in subjects:
            updated = max([a.observed_at for a in s.attributes], default=s.created_at)
            rows[t.profiles].append({"user_id": s.user_id, "created_at": s.created_at, "updated_at": updated})
            rows[t.subject_keys].append(_key_row(s.user_id))
            rows[t.attributes] += [_attribute_row(s.user_id, a) for a in s.attributes]
            rows[t.events] += [_event_row(e, e.occurred_at) for e in s.events]
            rows[t.consents] += [_consent_row(c) for c in s.consents]
        for table, values in rows.items():
            for i in range(0, len(values), BULK_ROWS):
                await self.conn.execute(table.insert(), values[i:i + BULK_ROWS])

    async def attributes(self, user_id: str) -> list[Attribute]:
        rows = (await self.conn.execute(_ATTRS, {"u": user_id})).all()
        return [Attribute(r.field, r.value, r.source, r.confidence, r.observed_at) for r in rows]

    async def put_attributes(self, user_id: str, attributes: Sequence[Attribute]) -> None:
        if not attributes:
            return
        stmt = upsert(self.conn.dialect, t.attributes, ("user_id", "field", "source"),
                      ("value", "confidence", "observed_at"))
        await self.conn.execute(stmt, [_attribute_row(user_id, a) for a in attributes])
        latest = max(a.observed_at for a in attributes)
        await self.conn.execute(
            t.profiles.update().where(t.profiles.c.user_id == user_id).values(updated_at=latest))

    async def user_ids(self, prefix: str, limit: int, after: str | None = None) -> list[str]:
        """Profile ids that start with ``prefix``, in order, at most ``limit``; only those after ``after`` when
        given (the last id of the previous page), so a caller filtering the pages can read on until it has enough."""
        column = t.profiles.c.user_id
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # LIKE narrows the search (and can use the key's index); SQLite's LIKE ignores ASCII case, so the exact
        # prefix comparison keeps the match case-sensitive on both databases, like every other lookup by id.
        stmt = (sa.select(column)
                .where(column.like(escaped + "%", escape="\\"), sa.func.substr(column, 1, len(prefix)) == prefix)
                .order_by(column).limit(limit))
        if after is not None:
            stmt = stmt.where(column > after)
        return [r[0] for r in (await self.conn.execute(stmt)).all()]

    async def add_events(self, events: Sequence[Event], recorded_at: datetime) -> list[int]:
        if not events:
            return []
        stmt = t.events.insert().returning(t.events.c.id, sort_by_parameter_order=True)
        rows = (await self.conn.execute(stmt, [_event_row(e, recorded_at) for e in events])).all()
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
        return fold(user_id, await self.consent_history(user_id))

    async def add_consent(self, record: ConsentRecord) -> None:
        await self.conn.execute(t.consents.insert(), _consent_row(record))

    async def add_request(self, request: SubjectRequest) -> int:
        row = {f: getattr(request, f) for f in _REQUEST_FIELDS}
        return int((await self.conn.execute(t.requests.insert().returning(t.requests.c.id), row)).scalar_one())

    async def request(self, request_id: int) -> SubjectRequest | None:
        row = (await self.conn.execute(sa.select(t.requests).where(t.requests.c.id == request_id))).first()
        return None if row is None else _request(row)

    async def requests(self, user_id: str | None = None, status: str | None = None) -> list[SubjectRequest]:
        stmt = sa.select(t.requests).order_by(t.requests.c.id)
        if user_id is not None:
            stmt = stmt.where(t.requests.c.user_id == user_id)
        if status is not None:
            stmt = stmt.where(t.requests.c.status == status)
        return [_request(r) for r in (await self.conn.execute(stmt)).all()]

    async def update_request(self, request: SubjectRequest) -> None:
        assert request.id is not None
        await self.conn.execute(t.requests.update().where(t.requests.c.id == request.id).values(
            status=request.status, reason=request.reason, verification=request.verification,
            updated_at=request.updated_at, receipt=request.receipt))

    async def existing_items(self, item_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in chunks(item_ids):
            found.update(r[0] for r in (await self.conn.execute(_ITEMS_IN, {"ids": chunk})).all())
        return found

    async def put_items(self, items: Sequence[Item]) -> None:
        if not items:
            return
        stmt = upsert(self.conn.dialect, t.items, ("item_id",), ("kind", "title", "attributes"))
        await self.conn.execute(stmt, [
            {"item_id": i.item_id, "kind": i.kind, "title": i.title, "attributes": i.attributes} for i in items
        ])

    async def items(self, item_ids: Sequence[str]) -> list[Item]:
        found: list[Item] = []
        for chunk in chunks(item_ids):
            stmt = sa.select(t.items).where(t.items.c.item_id.in_(chunk))
            found += [Item(r.item_id, r.kind, r.title, r.attributes) for r in (await self.conn.execute(stmt)).all()]
        return found

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
        columns = list(t.preferences.c) if evidence else [c for c in t.preferences.c if c.name != "evidence"]
        for chunk in chunks(user_ids):
            stmt = sa.select(*columns).where(t.preferences.c.user_id.in_(chunk))
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
        on = {} if tokens is None else {"tokens": sorted(set(tokens))}
        for chunk in chunks(user_ids):
            result: Any = await self.conn.execute(_WEIGHTS_OF if tokens is None else _WEIGHTS_OF_ON,
                                                  {"ids": chunk, **on})
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

    async def user_vectors(self, user_ids: Sequence[str]) -> list[StoredVector]:
        out: list[StoredVector] = []
        for chunk in chunks(user_ids):
            stmt = sa.select(t.user_vectors).where(t.user_vectors.c.user_id.in_(chunk))
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
        for chunk in chunks(event_ids):
            await self.conn.execute(t.pending_events.delete().where(t.pending_events.c.event_id.in_(chunk)))

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
        """Those of ``user_ids`` who consent to ``purpose`` now (``domain.consent.decide``), sorted.

        To walk everyone, page through ``profile_ids`` and ask per page (a grouped query over all users per page
        would make the walk quadratic).
        """
        spec = PURPOSES[purpose]
        if not spec.needs_consent:
            return sorted(set(user_ids))
        found: list[str] = []
        for chunk in chunks(user_ids):
            rows = (await self.conn.execute(_CONSENTING[purpose],
                                            {"purpose": purpose, "now": now, "ids": chunk})).all()
            found += [r.user_id for r in rows]
        return sorted(found)

    async def profile_ids(self, after: str, limit: int) -> list[str]:
        stmt = (sa.select(t.profiles.c.user_id).where(t.profiles.c.user_id > after)
                .order_by(t.profiles.c.user_id).limit(limit))
        return [r[0] for r in (await self.conn.execute(stmt)).all()]

    async def events_of(self, user_ids: Sequence[str]) -> list[tuple[int, Event]]:
        """Every stored event of these users, oldest first."""
        out: list[tuple[int, Event]] = []
        for chunk in chunks(user_ids):
            stmt = (sa.select(t.events).where(t.events.c.user_id.in_(chunk))
                    .order_by(t.events.c.id))
            out += [(r.id, Event(r.user_id, r.event_type, r.occurred_at, r.item_id, r.properties))
                    for r in (await self.conn.execute(stmt)).all()]
        return out

    async def clear_preferences(self, user_ids: Sequence[str], source: str) -> None:
        for chunk in chunks(user_ids):
            await self.conn.execute(t.preferences.delete().where(
                t.preferences.c.user_id.in_(chunk), t.preferences.c.source == source))

    # -- retention: behavioural data older than the retention period ------------------------------------------
    async def users_with_events_before(self, before: datetime, after: str, limit: int) -> list[str]:
        """Users with an event that happened before ``before``, in id order, after ``after``, at most ``limit``."""
        stmt = (sa.select(t.events.c.user_id).where(t.events.c.occurred_at < before, t.events.c.user_id > after)
                .group_by(t.events.c.user_id).order_by(t.events.c.user_id).limit(limit))
        return [r[0] for r in (await self.conn.execute(stmt)).all()]

    async def count_events_before(self, before: datetime) -> dict[str, int]:
        """How many events happened before ``before``, and how many of those wait in the batch queue."""
        old = t.events.c.occurred_at < before
        events = (await self.conn.execute(sa.select(sa.func.count()).select_from(t.events).where(old))).scalar_one()
        queued = (await self.conn.execute(
            sa.select(sa.func.count()).select_from(t.pending_events)
            .join(t.events, t.events.c.id == t.pending_events.c.event_id).where(old))).scalar_one()
        return {"events": int(events), "pending_events": int(queued)}

    async def delete_events_before(self, user_ids: Sequence[str], before: datetime) -> dict[str, int]:
        """Delete these users' events that happened before ``before``, queued signals first; how many of each."""
        removed = {"events": 0, "pending_events": 0}
        for chunk in chunks(user_ids):
            old = sa.select(t.events.c.id).where(t.events.c.user_id.in_(chunk), t.events.c.occurred_at < before)
            queued = await self.conn.execute(t.pending_events.delete().where(t.pending_events.c.event_id.in_(old)))
            events = await self.conn.execute(t.events.delete().where(t.events.c.user_id.in_(chunk),
                                                                     t.events.c.occurred_at < before))
            removed["pending_events"] += queued.rowcount
            removed["events"] += events.rowcount
        return removed
