"""The consent gate: who may call what, for which purpose, about whom; and which fields may leave.

``open`` runs before a handler (role, purpose, subject binding, consent) and raises an error the agent can act on.
``release`` runs on the handler's result and withholds, field by field, what the caller may not see, the
purpose may not use, anonymization hides, or the subject has not consented to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from ..domain import categories as cat
from ..domain.audit import Withholding
from ..domain.callers import Caller
from ..domain.consent import ConsentDecision
from ..domain.errors import ConsentRequired, InvalidArgument, NotPermitted, UnknownUser
from ..domain.ports import Clock, Store
from ..domain.purposes import PURPOSES, Purpose
from .disclosure import GatedResult, WithheldField, walk
from .lineage import Sourced
from .surface import Handler

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Access:
    """What the gate established for one call; handlers receive it and act within it."""

    caller: Caller
    handler: Handler
    purpose: Purpose
    subject: str | None  # the one subject the call is about, if it is about exactly one
    now: datetime
    subjects: tuple[str, ...] = ()  # every subject it touches (a batch may touch many)
    consents: tuple[ConsentDecision, ...] = ()  # each subject's consent to the purpose, when it needs consent
    anonymization: bool = True
    left_out: list[Withholding] = field(default_factory=list)  # inputs ``admit`` kept out of derived values
    # Subjects a handler found behind an argument that is not a user id (a request id): the audit names them too.
    reached: list[str] = field(default_factory=list)

    @property
    def consented(self) -> bool:
        """Every subject of the call consents to its purpose now (the gate refuses the call otherwise)."""
        return len(self.consents) == len(self.subjects) and all(d.allowed for d in self.consents)

    def reason_withheld(self, category: str) -> str | None:
        """Why data of ``category`` may not leave in this call, or None when it may: the one release rule."""
        if category == "unclassified":
            return "unclassified"
        if category in cat.NON_PERSONAL:
            return None
        if not self.caller.may_see(category):
            return "caller_not_permitted"
        # The subject's rights of access and erasure reach all data held, whatever it was collected for: the
        # privacy officer's handlers answer them, so their purpose does not narrow what leaves (the caller's
        # categories, anonymization and consent still do).
        if not self.purpose.may_use(category) and self.handler.role != "privacy_officer":
            return "purpose_not_compatible"
        if self.anonymization and cat.is_direct_identifier(category) and not (
                self.caller.identifiers and self.purpose.needs_identifiers):
            return "anonymized"
        if self.purpose.needs_consent and not self.consented:
            return "consent_missing"
        return None

    def admit(self, name: str, data: Sourced[T], empty: T) -> Sourced[T]:
        """``data`` as an input of derived values, or ``empty`` when any of its categories may not be released
        here: then it is named in the withheld list as ``input:<name>`` and nothing is computed from it."""
        for category in sorted(data.categories):
            reason = self.reason_withheld(category)
            if reason is not None:
                self.left_out.append(Withholding(f"input:{name}", category, reason))
                return Sourced(empty, frozenset())
        return data


@dataclass(frozen=True, slots=True)
class Release:
    result: BaseModel
    released: list[str]
    withheld: list[Withholding]


def read_purposes(caller: Caller) -> tuple[Purpose, ...]:
    """The purposes ``caller`` may read one identifiable user for: a reader's individual purposes that it may act
    for and of whose data it may see some category (what ``Gate.open`` asks of a read that names a user). Whether
    it may read a given user for one of them is then that user's consent to it now."""
    if "reader" not in caller.roles:
        return ()
    return tuple(p for p in PURPOSES.values() if p.individual and p.name in caller.purposes
                 and any(caller.may_see(c) for c in p.uses))


class Gate:
    def __init__(self, store: Store, clock: Clock, anonymization: bool) -> None:
        self.store = store
        self.clock = clock
        self.anonymization = anonymization

    def purpose_for(self, caller: Caller, handler: Handler, arguments: Mapping[str, Any]) -> Purpose:
        name = handler.purpose or arguments.get("purpose") or caller.default_purpose
        purpose = PURPOSES.get(name) if isinstance(name, str) else None
        if purpose is None:
            raise InvalidArgument(f"Unknown purpose {name!r}.", f"Purposes: {', '.join(PURPOSES)} (policy://purposes).")
        return purpose

    async def open(self, caller: Caller, handler: Handler, arguments: Mapping[str, Any]) -> Access:
        if handler.role not in caller.roles:
            raise NotPermitted(
                f"Caller {caller.name!r} lacks the {handler.role!r} role that {handler.name!r} needs.",
                "Ask the operator to grant the role in the server's caller settings.")
        purpose = self.purpose_for(caller, handler, arguments)
        if purpose.name not in caller.purposes:
            raise NotPermitted(
                f"Caller {caller.name!r} may not act for purpose {purpose.name!r}.",
                f"Its purposes: {', '.join(sorted(caller.purposes))}.")
        if handler.purpose is None and not any(caller.may_see_some_of(c) for c in purpose.uses):
            raise NotPermitted(
                f"Caller {caller.name!r} may see none of the data categories purpose {purpose.name!r} uses.",
                f"The purpose uses: {', '.join(purpose.uses)}.")
        subjects = handler.subjects(arguments)
        if caller.subject is not None and any(s != caller.subject for s in subjects):
            raise NotPermitted(f"Caller {caller.name!r} is bound to one data subject and may not reach another.")
        if subjects and not purpose.individual:
            raise NotPermitted(
                f"Purpose {purpose.name!r} is for aggregates only, never one identifiable person.",
                "Use aggregate tools for analytics, or another purpose for this user.")
        now = self.clock.now()
        decisions = [await self._consent(caller, subject, purpose, now) for subject in subjects
                     ] if purpose.needs_consent else []
        subject = subjects[0] if len(subjects) == 1 else None
        return Access(caller, handler, purpose, subject, now, tuple(subjects), tuple(decisions), self.anonymization)

    async def _consent(self, caller: Caller, subject: str, purpose: Purpose, now: datetime) -> ConsentDecision:
        """The subject's consent to ``purpose`` now; refused with what to do next when there is none."""
        async with self.store.read() as repo:
            consents = await repo.consents(subject)
            # A user with no consent records at all may not exist: say which, it changes the next step.
            if not consents.current and not consents.opt_outs and not await repo.profile_exists(subject):
                raise UnknownUser(subject)
        decision = consents.decide(purpose.name, now)
        if not decision.allowed:
            # Why there is no consent (withdrawn, expired, ...) is consent data: only for callers who may see it.
            why = (decision.explain(subject) if caller.may_see(cat.CONSENT)
                   else f"User {subject!r} has not consented to {purpose.name!r}.")
            raise ConsentRequired(
                why + " Nothing is released for this purpose without it.",
                f"Ask the user; if they agree, call record_consent(user_id, purpose={purpose.name!r}, "
                "granted=true, source=...). Purpose 'service' needs no consent.")
        return decision

    def release(self, access: Access, result: BaseModel) -> Release:
        if not isinstance(result, GatedResult):
            raise TypeError(f"{access.handler.action} returned {type(result).__name__}, not a GatedResult")
        model, released, withheld = walk(result, access.reason_withheld)
        withheld = list(access.left_out) + withheld
        report = [WithheldField(field=w.field, category=w.category, reason=w.reason,
                                detail=self.detail(access, w)) for w in withheld]
        model = model.model_copy(update={"withheld": report})
        return Release(model, released, withheld)

    def detail(self, access: Access, w: Withholding) -> str:
        match w.reason:
            case "caller_not_permitted":
                return f"Caller {access.caller.name!r} is not configured to see {w.category}."
            case "purpose_not_compatible":
                fits = [p.name for p in PURPOSES.values()
                        if p.individual and p.may_use(w.category) and p.name in access.caller.purposes]
                hint = f" Purposes of yours that may: {', '.join(fits)}." if fits else ""
                return f"Purpose {access.purpose.name!r} does not use {w.category}.{hint}"
            case "anonymized":
                return ("Direct identifiers are withheld under anonymization unless the caller may see them and "
                        "the purpose needs them.")
            case "consent_missing":
                return f"The user has not consented to {access.purpose.name!r}."
            case _:
                return "The field carries no data category, so it never leaves."
