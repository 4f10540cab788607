"""What the database holds about one data subject, found from the schema: every table with a ``user_id`` column,
and the tables whose rows hang off one of those (a queued event). A table added with a ``user_id`` joins access and
erasure without code here. The audit log names subjects by pseudonym only; ``privacy/audit.py`` answers for it."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from . import schema as t
from .database import Conn

EXPORTED_NEVER = {"subject_keys"}  # the key is what makes the subject's pseudonyms theirs; it is not about them
# Tables whose rows outlive the subject's erasure with these columns cleared: a request is the record that the
# person asked (for the erasure itself, too) and keeps its receipt, named only by its audit pseudonym from then on.
CLEARED_ON_ERASURE = {"requests": ("user_id", "details")}


def _subject_tables() -> list[sa.Table]:
    """Tables keyed to a subject, children before parents (the order rows can be deleted in)."""
    return [table for table in reversed(t.metadata.sorted_tables) if "user_id" in table.c]


def _dependent_tables() -> list[tuple[sa.Table, sa.Column[Any], sa.Table]]:
    """Tables without a ``user_id`` whose rows belong to a row of a subject table: (table, its key, the parent)."""
    subject = set(_subject_tables())
    found = []
    for table in reversed(t.metadata.sorted_tables):
        if "user_id" in table.c:
            continue
        for fk in table.foreign_keys:
            if fk.column.table in subject:
                found.append((table, fk.parent, fk.column.table))
    return found


SUBJECT_TABLES = _subject_tables()
DEPENDENT_TABLES = _dependent_tables()


def _owned(table: sa.Table, key: sa.Column[Any], parent: sa.Table, user_id: str) -> Any:
    fk = next(fk for fk in key.foreign_keys if fk.column.table is parent)
    return key.in_(sa.select(fk.column).where(parent.c.user_id == user_id))


async def held(conn: Conn, user_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in SUBJECT_TABLES:
        counts[table.name] = int((await conn.execute(
            sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id))).scalar_one())
    for table, key, parent in DEPENDENT_TABLES:
        counts[table.name] = int((await conn.execute(
            sa.select(sa.func.count()).select_from(table).where(_owned(table, key, parent, user_id)))).scalar_one())
    return {name: n for name, n in counts.items() if n}


def _json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return base64.b64encode(bytes(value)).decode()
    return value


async def export(conn: Conn, user_id: str) -> dict[str, Any]:
    """Every row about the subject, table by table, as JSON values (times in ISO 8601, binary in base64)."""
    out: dict[str, Any] = {}
    for table in reversed(SUBJECT_TABLES):  # parents first: the profile, then what hangs off it
        if table.name in EXPORTED_NEVER:
            continue
        columns = [c for c in table.c if c.name != "user_id"]
        order = list(table.primary_key.columns)
        rows = (await conn.execute(sa.select(*columns).where(table.c.user_id == user_id).order_by(*order))).all()
        if rows:
            out[table.name] = [{c.name: _json(v) for c, v in zip(columns, row, strict=True)} for row in rows]
    for table, key, parent in DEPENDENT_TABLES:
        rows = (await conn.execute(sa.select(table).where(_owned(table, key, parent, user_id)))).all()
        if rows:
            out[table.name] = [{c.name: _json(v) for c, v in zip(table.c, row, strict=True)} for row in rows]
    return out


async def erase(conn: Conn, user_id: str) -> dict[str, int]:
    """Delete every row about the subject, dependents and children first (a row of ``CLEARED_ON_ERASURE`` stays,
    cleared of what ties it to them); what was removed, by table."""
    removed = await held(conn, user_id)
    for table, key, parent in DEPENDENT_TABLES:
        await conn.execute(table.delete().where(_owned(table, key, parent, user_id)))
    for table in SUBJECT_TABLES:
        if (cleared := CLEARED_ON_ERASURE.get(table.name)) is not None:
            await conn.execute(table.update().where(table.c.user_id == user_id).values(dict.fromkeys(cleared)))
        else:
            await conn.execute(table.delete().where(table.c.user_id == user_id))
    return removed
