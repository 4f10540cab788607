"""The audit log: every call appends one entry to a chain keyed with the audit key; ``verify`` finds any change,
removal or reorder, and any entry written without the key.

Each entry's hash is an HMAC-SHA256, under the audit key, of the hash before it and the entry's fields. The key is
kept out of the database, so whoever can write the database but lacks the key cannot rewrite an entry and
recompute the chain after it. Entries from before the audit key are plain SHA-256 with no key id; they stay
verifiable as they are, and ``seal`` follows them with a keyed entry. Verification then requires that no unkeyed
entry follows a keyed one and that the log ends keyed: a rewrite in plain SHA-256 shows.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..domain.audit import AuditEntry, ChainedEntry, Withholding
from ..domain.ports import AuditStore, Clock
from .pseudonyms import Pseudonymizer

GENESIS = "0" * 64
SEAL = "audit:seal"  # the action of the entry that ``seal`` appends


@dataclass(frozen=True, slots=True)
class AuditKey:
    """A key of the chain. Entries name it by ``id``, a fingerprint (the first 16 hex digits of its SHA-256)."""

    secret: bytes = field(repr=False)

    @property
    def id(self) -> str:
        return hashlib.sha256(self.secret).hexdigest()[:16]


def canonical(seq: int, entry: AuditEntry, key_id: str | None = None) -> bytes:
    """The bytes an entry's hash covers: every field, in a fixed order, as compact JSON (with the key id when
    keyed, so that it cannot be swapped either)."""
    fields: dict[str, Any] = {
        "seq": seq, "at": entry.at.isoformat(), "caller": entry.caller, "action": entry.action,
        "subject": entry.subject, "purpose": entry.purpose, "released": list(entry.released),
        "withheld": [[w.field, w.category, w.reason] for w in entry.withheld], "outcome": entry.outcome,
    }
    if key_id is not None:
        fields["key_id"] = key_id
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def as_json(chained: ChainedEntry) -> dict[str, Any]:
    """An entry as one line of an audit export: every field its hash covers, with ``prev_hash``, ``hash`` and
    ``key_id``, so the chain can be recomputed from the export with the audit key."""
    e = chained.entry
    return {"seq": chained.seq, "at": e.at.isoformat(), "caller": e.caller, "action": e.action, "subject": e.subject,
            "purpose": e.purpose, "released": list(e.released),
            "withheld": [{"field": w.field, "category": w.category, "reason": w.reason} for w in e.withheld],
            "outcome": e.outcome, "prev_hash": chained.prev_hash, "hash": chained.hash, "key_id": chained.key_id}


def chain_hash(prev_hash: str, seq: int, entry: AuditEntry, key: AuditKey | None) -> str:
    """An entry's hash: HMAC-SHA256 under ``key``; plain SHA-256 (``key`` None) for entries from before the key."""
    message = prev_hash.encode() + b"\n" + canonical(seq, entry, None if key is None else key.id)
    if key is None:
        return hashlib.sha256(message).hexdigest()
    return hmac.new(key.secret, message, hashlib.sha256).hexdigest()


class AuditLog:
    """The one way into the log: ``record`` names the subject by pseudonym, stamps the time and appends in order.

    Several processes may share the log: a taken place means re-read and retry.
    """

    def __init__(self, store: AuditStore, clock: Clock, pseudonyms: Pseudonymizer, key: AuditKey,
                 previous_keys: Sequence[AuditKey] = ()) -> None:
        self._store = store
        self._clock = clock
        self._pseudonyms = pseudonyms
        self._key = key  # every entry appended is keyed with it
        self._keys = (key, *previous_keys)  # what verify checks older entries with
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
        return await verify(self._store, await self._store.head(), self._keys)

    async def seal(self) -> ChainedEntry | None:
        """Run at start: when the newest entry is not keyed with the current key (entries from before the audit
        key, or a key just rotated), append one that is, so the current key covers everything before it."""
        last = await self._store.last()
        if last is None or last.key_id == self._key.id:
            return None
        return await self.append(AuditEntry(at=self._clock.now(), caller="server", action=SEAL, subject=None,
                                            purpose=None, released=(), withheld=(), outcome="ok"))

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
                chained = ChainedEntry(seq, entry, prev, chain_hash(prev, seq, entry, self._key), self._key.id)
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
    keyed_from: int | None = None  # the first keyed entry; those before it are from before the audit key


async def verify(store: AuditStore, recorded_head: tuple[int, str] | None, keys: Sequence[AuditKey]
                 ) -> Verification:
    """Walk the chain from the start. ``recorded_head`` is the head row stored with the newest append; ``keys``
    are the audit keys the entries may be keyed with (the current one and those rotated out)."""
    by_id = {key.id: key for key in keys}
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    count = 0
    keyed_from: int | None = None
    last_keyed = False
    async for chained in store.entries():
        count += 1
        seq = chained.seq
        if seq != expected_seq:
            problems.append(f"entry {expected_seq} is missing (next found: {seq})")
        if chained.prev_hash != prev:
            problems.append(f"entry {seq} does not follow the entry before it")
        if chained.key_id is None:
            if last_keyed:
                problems.append(f"entry {seq} is not keyed but follows keyed entries: from here on the log was "
                                "rewritten without the audit key")
            if chained.hash != chain_hash(chained.prev_hash, seq, chained.entry, None):
                problems.append(f"entry {seq} was changed after it was written")
        elif (key := by_id.get(chained.key_id)) is None:
            problems.append(f"entry {seq} is keyed with key {chained.key_id}, which is none of the keys given: "
                            "a rotated key belongs in audit.previous_keys, or the entry was forged")
        elif not hmac.compare_digest(chained.hash, chain_hash(chained.prev_hash, seq, chained.entry, key)):
            problems.append(f"entry {seq} was changed after it was written (its hash does not match under key "
                            f"{key.id})")
        if chained.key_id is not None and keyed_from is None:
            keyed_from = seq
        last_keyed = chained.key_id is not None
        expected_seq, prev = seq + 1, chained.hash
    head = (expected_seq - 1, prev) if count else None
    if count and not last_keyed:
        problems.append(f"the log ends with entry {expected_seq - 1}, which is not keyed: it was rewritten without "
                        "the audit key, or no server has started since the upgrade (a start seals the log)")
    if recorded_head is not None and head != recorded_head:
        problems.append(
            f"the log ends at entry {head[0] if head else 0} but entry {recorded_head[0]} was the last written")
    if recorded_head is None and count:
        problems.append("the head record is missing")
    return Verification(not problems, count, head, tuple(problems), keyed_from)
