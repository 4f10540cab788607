"""An audit entry: one per tool call, resource read or prompt. It never holds raw identifiers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Withholding:
    field: str
    category: str
    reason: str  # caller_not_permitted | purpose_not_compatible | anonymized | consent_missing | unclassified


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    caller: str
    action: str  # a declared name: "tool:get_profile", "resource:profile://{user_id}", "tool:?" for an unknown one
    subject: str | None  # pseudonym of the data subject, never the raw id
    purpose: str | None
    released: tuple[str, ...]
    withheld: tuple[Withholding, ...]
    outcome: str  # "ok" or "error:<code>"


@dataclass(frozen=True, slots=True)
class ChainedEntry:
    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str  # HMAC-SHA256 under the audit key named by ``key_id``; plain SHA-256 before the audit key existed
    key_id: str | None = None  # a fingerprint of that key, never the key; None for entries from before it
