"""The hash-chained audit log: every call appends one entry; ``verify`` finds any change, removal or reorder."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..domain.audit import AuditEntry, ChainedEntry, Withholding
from ..domain.ports import AuditStore, Clock
from .pseudonyms import Pseudonymizer

GENESIS = "0" * 64


def canonical(seq: int, entry: AuditEntry) -> bytes:
    """The bytes an entry's hash covers: every field, in a fixed order, as compact JSON."""
    return json.dumps({
        "seq": seq, "at": entry.at.isoformat(), "caller": entry.caller, "action": entry.action,
        "subject": entry.subject, "purpose": entry.purpose, "released": list(entry.released),
        "withheld": [[w.field, w.category, w.reason] for w in entry.withheld], "outcome": entry.outcome,
    }, sort_keys=True, separators=(",", ":")).encode()


def chain_hash(prev_hash: str, seq: int, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(seq, entry)).hexdigest()


class AuditLog:
    """The one way into the log: ``record`` names the subject by pseudonym, stamps the time and appends in order.

    Several processes may share the log: a taken place means re-read and retry.
    """

    def __init__(self, store: AuditStore, clock: Clock, pseudonyms: Pseudonymizer) -> None:
        self._store = store
        self._clock = clock
        self._pseudonyms = pseudonyms
        self._lock = asyncio.Lock()
        self._head: tuple[int, str] | None = None

    async def record(self, *, caller: str, action: str, subject: str | None, purpose: str | None, outcome: str,
                     released: Sequence[str] = (), withheld: Sequence[Withholding] = ()) -> ChainedEntry:
        """One entry; ``subject`` is the raw user id, which never reaches the log (its pseudonym does)."""
        return await self.append(AuditEntry(
            at=self._clock.now(), caller=caller, action=action,
            subject=None if subject is None else await self._pseudonyms.subject(subject), purpose=purpose,
            released=tuple(released), withheld=tuple(withheld), outcome=outcome))

    async def entries(self, subject: str | None = None) -> AsyncIterator[ChainedEntry]:
        """The log in order; with ``subject`` (a raw user id) only the entries about that person."""
        names = None if subject is None else await self._pseudonyms.names(subject)
        async for entry in self._store.entries(names):
            yield entry

    async def last(self) -> ChainedEntry | None:
        return await self._store.last()

    async def head(self) -> tuple[int, str] | None:
        """The place and hash recorded with the newest append."""
        return await self._store.head()

    async def verify(self) -> Verification:
        return await verify(self._store, await self._store.head())

    # -- the personal-data port: who accessed the subject's data, for what ------------------------------------
    # Entries are never removed (that would break the chain). Once the subject's key is erased with their profile,
    # nothing links them to the person any more, and ``held`` finds none.
    holder = "audit_log"

    async def held(self, user_id: str) -> dict[str, int]:
        count = 0
        async for _ in self.entries(user_id):
            count += 1
        return {"entries": count} if count else {}

    async def export(self, user_id: str) -> dict[str, Any]:
        found = [{"seq": c.seq, "at": c.entry.at.isoformat(), "caller": c.entry.caller, "action": c.entry.action,
                  "purpose": c.entry.purpose, "outcome": c.entry.outcome, "released": list(c.entry.released),
                  "withheld": [{"field": w.field, "category": w.category, "reason": w.reason}
                               for w in c.entry.withheld]}
                 async for c in self.entries(user_id)]
        return {"entries": found} if found else {}

    async def erase(self, user_id: str) -> dict[str, int]:
        """Nothing is removed here; the count is of the entries that the erasure of the key leaves unlinkable."""
        held = await self.held(user_id)
        return {"entries_unlinked": held["entries"]} if held else {}

    async def append(self, entry: AuditEntry) -> ChainedEntry:
        async with self._lock:
            while True:
                if self._head is None:
                    last = await self._store.last()
                    self._head = (0, GENESIS) if last is None else (last.seq, last.hash)
                seq, prev = self._head[0] + 1, self._head[1]
                chained = ChainedEntry(seq, entry, prev, chain_hash(prev, seq, entry))
                if await self._store.append(chained):
                    self._head = (seq, chained.hash)
                    return chained
                self._head = None  # another writer took the place


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    entries: int
    head: tuple[int, str] | None
    problems: tuple[str, ...]


async def verify(store: AuditStore, recorded_head: tuple[int, str] | None) -> Verification:
    """Walk the chain from the start. ``recorded_head`` is the head row stored with the newest append."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    count = 0
    async for chained in store.entries():
        count += 1
        if chained.seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (next found: {chained.seq})")
        if chained.prev_hash != prev:
            problems.append(f"entry {chained.seq} does not follow the entry before it")
        if chained.hash != chain_hash(chained.prev_hash, chained.seq, chained.entry):
            problems.append(f"entry {chained.seq} was changed after it was written")
        expected_seq, prev = chained.seq + 1, chained.hash
    head = (expected_seq - 1, prev) if count else None
    if recorded_head is not None and head != recorded_head:
        problems.append(
            f"the log ends at entry {head[0] if head else 0} but entry {recorded_head[0]} was the last written")
    if recorded_head is None and count:
        problems.append("the head record is missing")
    return Verification(not problems, count, head, tuple(problems))
