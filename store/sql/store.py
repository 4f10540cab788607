"""The SQL store on SQLite or PostgreSQL: repositories per transaction, the audit log, server and subject keys,
and what the tables hold about one subject (the personal-data port)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ...domain.audit import AuditEntry, ChainedEntry, Withholding
from ...domain.errors import Conflict
from ...domain.ports import SubjectKey
from .. import migrations
from . import personal
from . import schema as t
from .database import Database, PostgresDatabase, SQLiteDatabase
from .embedding_cache import SQLEmbeddingCache
from .repositories import SQLRepositories, chunks, upsert

_LAST = sa.select(t.audit_log).order_by(t.audit_log.c.seq.desc()).limit(1)
_AUDIT_INSERT = t.audit_log.insert()
_KEYS = sa.select(t.subject_keys).where(t.subject_keys.c.user_id.in_(sa.bindparam("ids", expanding=True)))


def _row_to_entry(r: Any) -> ChainedEntry:
    entry = AuditEntry(
        at=r.at, caller=r.caller, action=r.action, subject=r.subject, purpose=r.purpose,
        released=tuple(r.released), withheld=tuple(Withholding(**w) for w in r.withheld), outcome=r.outcome,
    )
    return ChainedEntry(seq=r.seq, entry=entry, prev_hash=r.prev_hash, hash=r.hash, key_id=r.key_id)


class SQLStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def sqlite(cls, path: Path) -> SQLStore:
        return cls(SQLiteDatabase(path))

    @classmethod
    def postgresql(cls, url: str, schema: str | None = None) -> SQLStore:
        return cls(PostgresDatabase(url, schema=schema))

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def migrate(self) -> None:
        await self.db.run_sync(migrations.upgrade)

    async def schema_revision(self) -> str | None:
        return await self.db.run_sync(migrations.current)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[SQLRepositories]:
        async with self.db.read() as conn:
            yield SQLRepositories(conn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[SQLRepositories]:
        async with self.db.write() as conn:
            yield SQLRepositories(conn)

    async def close(self) -> None:
        await self.db.close()

    def embedding_cache(self) -> SQLEmbeddingCache:
        """Where a remote embedder keeps what it received (the ``EmbeddingCache`` port), in this database."""
        return SQLEmbeddingCache(self.db)

    # -- personal data: what the tables hold about one subject -------------------------------------------
    holder = "database"

    async def held(self, user_id: str) -> dict[str, int]:
        async with self.db.read() as conn:
            return await personal.held(conn, user_id)

    async def export(self, user_id: str) -> dict[str, Any]:
        async with self.db.read() as conn:
            return await personal.export(conn, user_id)

    async def erase(self, user_id: str) -> dict[str, int]:
        async with self.db.write() as conn:
            removed = await personal.erase(conn, user_id)
        if removed:
            await self.db.scrub(sorted(removed))
        return removed

    # -- keys --------------------------------------------------------------------------------------------
    async def secret(self, name: str) -> bytes:
        """A random server secret, created on first use and kept in the database."""
        query = sa.select(t.server_keys.c.secret).where(t.server_keys.c.name == name)
        async with self.db.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            try:
                async with self.db.write() as conn:
                    await conn.execute(t.server_keys.insert(), {"name": name, "secret": secrets.token_hex(32)})
            except Conflict:
                pass  # another process created it first
            async with self.db.read() as conn:
                row = (await conn.execute(query)).first()
        assert row is not None
        return bytes.fromhex(row[0])

    async def subject_keys(self, user_ids: Sequence[str]) -> dict[str, SubjectKey]:
        """Each subject's own pseudonym key; an id without a profile has none."""
        found: dict[str, SubjectKey] = {}
        async with self.db.read() as conn:
            for chunk in chunks(user_ids):
                rows = (await conn.execute(_KEYS, {"ids": chunk})).all()
                found.update((r.user_id, SubjectKey(bytes.fromhex(r.secret), r.legacy_pseudonym)) for r in rows)
        return found

    # -- audit log -----------------------------------------------------------------------------------------
    async def last(self) -> ChainedEntry | None:
        """The entry with the highest place in the log."""
        async with self.db.read() as conn:
            row = (await conn.execute(_LAST)).first()
        return None if row is None else _row_to_entry(row)

    async def append(self, chained: ChainedEntry) -> bool:
        e = chained.entry
        try:
            async with self.db.write() as conn:
                await conn.execute(_AUDIT_INSERT, {
                    "seq": chained.seq, "at": e.at, "caller": e.caller, "action": e.action, "subject": e.subject,
                    "purpose": e.purpose, "released": list(e.released),
                    "withheld": [{"field": w.field, "category": w.category, "reason": w.reason} for w in e.withheld],
                    "outcome": e.outcome, "prev_hash": chained.prev_hash, "hash": chained.hash,
                    "key_id": chained.key_id,
                })
                await conn.execute(upsert(conn.dialect, t.audit_head, ("id",), ("seq", "hash")),
                                   {"id": 1, "seq": chained.seq, "hash": chained.hash})
        except Conflict:
            return False
        return True

    async def head(self) -> tuple[int, str] | None:
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(t.audit_head.c.seq, t.audit_head.c.hash))).first()
        return None if row is None else (row[0], row[1])

    async def entries(self, subjects: Sequence[str] | None = None, batch: int = 1000
                      ) -> AsyncIterator[ChainedEntry]:
        after = -1
        while True:
            query = sa.select(t.audit_log).where(t.audit_log.c.seq > after)
            if subjects is not None:
                query = query.where(t.audit_log.c.subject.in_(list(subjects)))
            query = query.order_by(t.audit_log.c.seq).limit(batch)
            async with self.db.read() as conn:
                rows = (await conn.execute(query)).all()
            for row in rows:
                yield _row_to_entry(row)
            if len(rows) < batch:
                return
            after = rows[-1].seq
