"""The consent ledger: read decisions and history, record grants, denials and withdrawals.

A caller records a grant only for a purpose it acts for, or holds the ``privacy_officer`` role (choices the user
makes through the privacy office, by letter or email). A denial or withdrawal any writer may record: saying no
must be as easy as saying yes, wherever the user says it.
"""

from __future__ import annotations

from datetime import datetime

from ..domain.consent import (
    OBJECTION,
    RESTRICTION,
    SALE_OPT_OUT_SOURCES,
    STANDING_SOURCES,
    ConsentDecision,
    ConsentRecord,
    ConsentState,
    denied_by,
)
from ..domain.errors import InvalidArgument, NotPermitted, UnknownUser
from ..domain.limits import MAX_EVIDENCE, MAX_SOURCE
from ..domain.ports import Store
from ..domain.purposes import CONSENT_PURPOSES, PURPOSES
from ..domain.text import is_storable
from ..domain.timestamps import parse_timestamp
from ..privacy.gate import Access
from .item_model import SharedModel
from .vectors import PROFILING, IndexUpkeep
from .views import ConsentEntry, ConsentLedgerView, ConsentView, StandingRecordView


def _view(user_id: str, decision: ConsentDecision) -> ConsentView:
    record = decision.record
    return ConsentView(
        user_id=user_id, purpose=decision.purpose, basis=PURPOSES[decision.purpose].basis,
        allowed=decision.allowed, reason=decision.reason, explanation=decision.explain(user_id),
        source=record.source if record else None, recorded_at=record.recorded_at if record else None,
        expires_at=record.expires_at if record else None,
    )


def _purpose(name: str) -> str:
    if name not in PURPOSES:
        raise InvalidArgument(f"Unknown purpose {name!r}.", f"Purposes: {', '.join(PURPOSES)}.")
    return name


class Consents:
    def __init__(self, store: Store, upkeep: IndexUpkeep, model: SharedModel) -> None:
        self.store = store
        self.upkeep = upkeep
        self.model = model

    async def check(self, access: Access, user_id: str, purpose: str) -> ConsentView:
        _purpose(purpose)
        async with self.store.read() as repo:
            if not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            consents = await repo.consents(user_id)
        return _view(user_id, consents.decide(purpose, access.now))

    async def ledger(self, access: Access, user_id: str) -> ConsentLedgerView:
        async with self.store.read() as repo:
            if not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            history = await repo.consent_history(user_id)
            consents = await repo.consents(user_id)
        return ConsentLedgerView(
            user_id=user_id,
            decisions=[_view(user_id, consents.decide(p, access.now)) for p in PURPOSES],
            history=[ConsentEntry(purpose=r.purpose, state=r.state, source=r.source, recorded_at=r.recorded_at,
                                  expires_at=r.expires_at, evidence=r.evidence) for r in history],
        )

    async def record(self, access: Access, user_id: str, purpose: str, granted: bool, source: str,
                     expires_at: str | None, evidence: str | None) -> ConsentView:
        spec = PURPOSES[_purpose(purpose)]
        if not spec.needs_consent:
            raise InvalidArgument(f"Purpose {purpose!r} rests on the contract and takes no consent record.",
                                  f"Consent-based purposes: {', '.join(CONSENT_PURPOSES)}.")
        caller = access.caller
        if granted and purpose not in caller.purposes and "privacy_officer" not in caller.roles:
            raise NotPermitted(
                f"Caller {caller.name!r} may not record a grant of {purpose!r}: it does not act for that purpose. "
                "Nothing was recorded.",
                f"Its purposes: {', '.join(sorted(caller.purposes))}. A grant is recorded by a caller that acts for "
                "the purpose or by a privacy officer; a refusal or withdrawal, by any writer.")
        source = source.strip()
        if not source or len(source) > MAX_SOURCE:
            raise InvalidArgument(f"source must name where the consent came from (1 to {MAX_SOURCE} characters).",
                                  "E.g. 'chat:shopping-assistant', 'web:preferences-page', 'global_privacy_control'.")
        if source in (RESTRICTION, OBJECTION):
            raise InvalidArgument(f"Source {source!r} is reserved for the {source} record.",
                                  "Record it with restrict_processing or object_to_profiling.")
        if source in SALE_OPT_OUT_SOURCES and not spec.opted_out_by_sale_signals:
            raise InvalidArgument(f"Source {source!r} is an opt-out of sale or sharing; it applies to marketing.")
        if evidence is not None and len(evidence) > MAX_EVIDENCE:
            raise InvalidArgument(f"evidence is longer than {MAX_EVIDENCE} characters.")
        if not is_storable(source) or (evidence is not None and not is_storable(evidence)):
            raise InvalidArgument("source and evidence may not hold NUL characters or unpaired surrogates.")
        if granted and spec.basis == "explicit_consent" and not (evidence and evidence.strip()):
            raise InvalidArgument(
                f"Purpose {purpose!r} needs explicit consent: record what the user was told and agreed to.",
                "Pass evidence, e.g. the consent text shown and the user's reply.")
        expiry: datetime | None = None
        if expires_at is not None:
            if not granted:
                raise InvalidArgument("expires_at applies to grants only.")
            expiry = parse_timestamp(expires_at, "expires_at")
            if expiry <= access.now:
                raise InvalidArgument(f"expires_at {expires_at!r} is not in the future.")
        async with self.store.write() as repo:
            if not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            before = (await repo.consents(user_id)).current.get(purpose)
            # Saying no after a grant is a withdrawal; saying no before any grant is a denial.
            state: ConsentState = "granted"
            if not granted:
                state = "withdrawn" if before and before.state == "granted" else "denied"
            await repo.add_consent(ConsentRecord(user_id, purpose, state, source, access.now, evidence, expiry))
            consents = await repo.consents(user_id)
        await self.upkeep.follow_consent(user_id, purpose)  # profiling: into the similarity index or out of it now
        decision = consents.decide(purpose, access.now)
        if purpose == PROFILING and not decision.allowed:
            await self.model.forget(user_id)  # and out of the shared model, before the call returns
        return _view(user_id, decision)

    async def record_standing(self, access: Access, user_id: str, kind: str, source: str, evidence: str | None,
                              lift: bool = False) -> StandingRecordView:
        """A record that stands over every grant until the same kind lifts it: an opt-out of sale or sharing (CCPA)
        or a Global Privacy Control signal, a restriction of processing, an objection to profiling. One ledger
        record whose source is ``kind`` (``domain.consent.denied_by`` says what it denies); where it was received
        is kept in its evidence. Any writer records one; lifting a restriction or an objection needs the privacy
        officer."""
        if kind not in STANDING_SOURCES:
            raise InvalidArgument(f"Unknown record {kind!r}.", f"Kinds: {', '.join(STANDING_SOURCES)}.")
        if lift and "privacy_officer" not in access.caller.roles:
            raise NotPermitted(f"Caller {access.caller.name!r} may not lift a {kind}: that needs the privacy_officer "
                               "role. Nothing was recorded.", "Ask the privacy office to review and lift it.")
        where = source.strip()
        if not where or len(where) > MAX_SOURCE or not is_storable(where):
            raise InvalidArgument(f"source must say where the request or signal was received (1 to {MAX_SOURCE} "
                                  "characters, no NUL characters or unpaired surrogates).",
                                  "E.g. 'web:checkout' for a browser's Sec-GPC header, 'email:privacy-office'.")
        told = f"received via {where}"
        if evidence is not None and evidence.strip():
            room = MAX_EVIDENCE - len(told) - 2
            if len(evidence.strip()) > room or not is_storable(evidence):
                raise InvalidArgument(f"evidence must be at most {room} characters (with where it was received, the "
                                      f"record holds {MAX_EVIDENCE}), without NUL characters or unpaired "
                                      "surrogates.", "Shorten or clean the evidence.")
            told += "; " + evidence.strip()
        purposes = denied_by(kind)
        async with self.store.write() as repo:
            if not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            before = (await repo.consents(user_id)).current.get(purposes[0])
            state: ConsentState = "granted" if lift else (
                "withdrawn" if before and before.state == "granted" else "denied")
            await repo.add_consent(ConsentRecord(user_id, purposes[0], state, kind, access.now, told))
            consents = await repo.consents(user_id)
        if PROFILING in purposes:
            await self.upkeep.refresh([user_id])  # into the similarity index or out of it now
            if not consents.decide(PROFILING, access.now).allowed:
                await self.model.forget(user_id)  # and out of the shared model, before the call returns
        return StandingRecordView(user_id=user_id, record=kind, lifted=lift,
                                  decisions=[_view(user_id, consents.decide(p, access.now)) for p in purposes])
