"""The consent ledger's rules, in one place. No record means no consent; an expired grant is no consent.

``fold`` reads a subject's history into what decides; ``decide`` decides one purpose at one time. Storage may
select consenting users in its own language (SQL); a property test holds that selection to ``decide``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from .purposes import PURPOSES

ConsentState = Literal["granted", "denied", "withdrawn"]

# Sources that carry an opt-out of sale or sharing (CCPA) or a Global Privacy Control signal. Such a record is
# sticky: it denies the purposes it covers until the same source records a grant again.
SALE_OPT_OUT_SOURCES = ("do_not_sell_or_share", "global_privacy_control")
# A restriction of processing (GDPR Art. 18) and an objection to profiling (Art. 21) are sticky the same way:
# a restriction denies every purpose that needs consent, an objection the purposes marked ``ended_by_objection``.
RESTRICTION, OBJECTION = "restriction", "objection"
STANDING_SOURCES = (RESTRICTION, OBJECTION, *SALE_OPT_OUT_SOURCES)  # in the order a decision names them
STANDING_REASONS = {RESTRICTION: "restricted", OBJECTION: "objected",
                    **dict.fromkeys(SALE_OPT_OUT_SOURCES, "sale_opt_out")}


def denied_by(source: str) -> tuple[str, ...]:
    """The purposes a standing record of ``source`` denies (none for an ordinary source)."""
    if source == RESTRICTION:
        return tuple(p.name for p in PURPOSES.values() if p.needs_consent)
    if source == OBJECTION:
        return tuple(p.name for p in PURPOSES.values() if p.ended_by_objection)
    if source in SALE_OPT_OUT_SOURCES:
        return tuple(p.name for p in PURPOSES.values() if p.opted_out_by_sale_signals)
    return ()


def blocking_sources(purpose: str) -> tuple[str, ...]:
    """The standing sources whose records deny ``purpose``."""
    return tuple(s for s in STANDING_SOURCES if purpose in denied_by(s))


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    user_id: str
    purpose: str
    state: ConsentState
    source: str
    recorded_at: datetime
    evidence: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    purpose: str
    allowed: bool
    reason: str  # granted | contract | no_record | denied | withdrawn | expired | restricted | objected | sale_opt_out
    record: ConsentRecord | None = None

    def explain(self, user_id: str) -> str:
        match self.reason:
            case "contract":
                return f"Purpose {self.purpose!r} rests on the contract and needs no consent."
            case "granted":
                return f"User {user_id!r} granted {self.purpose!r}."
            case "no_record":
                return f"User {user_id!r} has no consent record for {self.purpose!r}, which means no consent."
            case "expired":
                return f"User {user_id!r}'s consent to {self.purpose!r} has expired."
            case "restricted":
                return f"User {user_id!r} restricted the processing of their data, which denies {self.purpose!r}."
            case "objected":
                return f"User {user_id!r} objected to profiling, which denies {self.purpose!r}."
            case "sale_opt_out":
                signal = self.record.source if self.record else "an opt-out"
                return f"User {user_id!r} opted out of sale or sharing ({signal}), which denies {self.purpose!r}."
            case _:
                return f"User {user_id!r} has {self.reason} consent to {self.purpose!r}."


def decide(purpose: str, current: dict[str, ConsentRecord], opt_outs: tuple[ConsentRecord, ...],
           now: datetime) -> ConsentDecision:
    """Whether the subject consents to ``purpose`` now.

    ``current`` holds the latest ordinary record per purpose; ``opt_outs`` the standing records (restriction,
    objection, sale opt-out signals), which deny what they cover over any grant.
    """
    spec = PURPOSES[purpose]
    if not spec.needs_consent:
        return ConsentDecision(purpose, True, "contract")
    standing = {r.source: r for r in opt_outs}
    for source in blocking_sources(purpose):
        if source in standing:
            return ConsentDecision(purpose, False, STANDING_REASONS[source], standing[source])
    record = current.get(purpose)
    if record is None:
        return ConsentDecision(purpose, False, "no_record")
    if record.state != "granted":
        return ConsentDecision(purpose, False, record.state, record)
    if record.expires_at is not None and record.expires_at <= now:
        return ConsentDecision(purpose, False, "expired", record)
    return ConsentDecision(purpose, True, "granted", record)


@dataclass(frozen=True, slots=True)
class SubjectConsents:
    """Everything needed to decide any purpose for one subject."""

    user_id: str
    current: dict[str, ConsentRecord]
    opt_outs: tuple[ConsentRecord, ...]

    def decide(self, purpose: str, now: datetime) -> ConsentDecision:
        return decide(purpose, self.current, self.opt_outs, now)


def fold(user_id: str, history: Iterable[ConsentRecord]) -> SubjectConsents:
    """From the oldest-first history: the latest ordinary record per purpose, and the standing records (a record
    from a standing source stands, whatever its purpose, until that source records a grant)."""
    current: dict[str, ConsentRecord] = {}
    opt_outs: dict[str, ConsentRecord] = {}
    for record in history:
        if record.source in STANDING_SOURCES:
            if record.state == "granted":
                opt_outs.pop(record.source, None)
            else:
                opt_outs[record.source] = record
        else:
            current[record.purpose] = record
    return SubjectConsents(user_id, current, tuple(opt_outs.values()))
