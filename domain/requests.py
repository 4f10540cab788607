"""Data subject requests: what a person asked for, how they were verified, where it stands, when it is due.

Kinds and statuses follow the issue's lifecycle; ``access`` and ``deletion`` are also the Consumer Reports Data
Rights Protocol's action names (its ``sale:opt_out`` is ``opt_out_sale`` here, a name that fits an identifier).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

RequestKind = Literal["access", "deletion", "correction", "restriction", "objection", "opt_out_sale"]
RequestStatus = Literal["received", "verified", "in_progress", "completed", "denied"]
Regime = Literal["gdpr", "ccpa"]

KINDS: tuple[RequestKind, ...] = ("access", "deletion", "correction", "restriction", "objection", "opt_out_sale")
STATUSES: tuple[RequestStatus, ...] = ("received", "verified", "in_progress", "completed", "denied")
REGIMES: tuple[Regime, ...] = ("gdpr", "ccpa")
OPEN: tuple[RequestStatus, ...] = ("received", "verified", "in_progress")
UNVERIFIED = "unverified"

# Where a request may go next. Nothing is done for a subject before they are verified; closed requests stay closed.
TRANSITIONS: dict[RequestStatus, tuple[RequestStatus, ...]] = {
    "received": ("verified", "denied"),
    "verified": ("in_progress", "completed", "denied"),
    "in_progress": ("completed", "denied"),
    "completed": (),
    "denied": (),
}


def add_month(at: datetime) -> datetime:
    """The same day of the next month, or its last day when it has no such day (GDPR Art. 12(3): one month,
    counted as Regulation 1182/71 counts it)."""
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


def due_date(regime: Regime, received_at: datetime) -> datetime:
    """When the answer is legally due: GDPR one month, CCPA 45 days (Cal. Civ. Code 1798.130), from receipt."""
    return add_month(received_at) if regime == "gdpr" else received_at + timedelta(days=45)


@dataclass(frozen=True, slots=True)
class SubjectRequest:
    id: int | None  # None until stored
    user_id: str | None  # None once the subject was erased: the record stays, unlinkable to them
    subject: str  # the audit log's pseudonym for the subject when the request was made
    kind: RequestKind
    regime: Regime
    requested_by: str  # the caller that relayed or made the request
    verification: str  # how the subject was verified, e.g. "unverified", "email link", "logged-in session"
    status: RequestStatus
    reason: str | None  # why it was denied
    details: str | None  # what the subject said, in their words
    created_at: datetime
    updated_at: datetime
    due_at: datetime
    receipt: dict[str, Any] | None = None  # what an erasure removed, without personal data

    def overdue(self, now: datetime) -> bool:
        return self.status in OPEN and now > self.due_at
