"""Data subject requests: submitted for the subject, moved through their lifecycle by the privacy officer.

Anyone acting for the subject may submit (a support assistant relaying "delete my data"); only a privacy officer
verifies, answers or denies. A privacy officer reads every request; a caller bound to one subject reads only that
subject's, checked here because a request id is not a user id the gate could check.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..domain.errors import InvalidArgument, NotPermitted, UnknownUser
from ..domain.limits import MAX_EVIDENCE, MAX_VERIFICATION
from ..domain.ports import Repositories, Store
from ..domain.requests import (
    KINDS,
    REGIMES,
    STATUSES,
    TRANSITIONS,
    UNVERIFIED,
    Regime,
    RequestKind,
    RequestStatus,
    SubjectRequest,
    due_date,
)
from ..domain.text import is_storable
from ..privacy.gate import Access
from ..privacy.pseudonyms import Pseudonymizer
from .views import RequestListView, RequestView

OFFICER = "privacy_officer"


def _view(request: SubjectRequest, access: Access) -> RequestView:
    assert request.id is not None
    return RequestView(
        request_id=request.id, user_id=request.user_id, subject=request.subject, kind=request.kind,
        regime=request.regime, requested_by=request.requested_by, verification=request.verification,
        status=request.status, reason=request.reason, details=request.details, created_at=request.created_at,
        updated_at=request.updated_at, due_at=request.due_at, overdue=request.overdue(access.now),
        receipt=request.receipt)


def _text(name: str, value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    if not value or len(value) > limit or not is_storable(value):
        raise InvalidArgument(f"{name} must be 1 to {limit} characters of text (no NUL characters or unpaired "
                              "surrogates). Nothing was recorded.")
    return value


def _reader_scope(access: Access) -> str | None:
    """The one subject a bound caller may read requests of; None for a privacy officer (everyone)."""
    caller = access.caller
    if caller.subject is not None:
        return caller.subject
    if OFFICER not in caller.roles:
        raise NotPermitted(f"Caller {caller.name!r} lacks the 'privacy_officer' role that reading requests needs.",
                           "Only a privacy officer, or a caller bound to the subject, reads requests.")
    return None


def _bound_to(access: Access, request: SubjectRequest) -> None:
    """A caller bound to one subject reaches only that subject's requests (the gate checks user ids, not these).
    The audit entry names the request's subject, whether the call is refused or not."""
    if request.user_id is not None:
        access.reached.append(request.user_id)
    bound = access.caller.subject
    if bound is not None and request.user_id != bound:
        raise NotPermitted(f"Caller {access.caller.name!r} is bound to one data subject and request {request.id} is "
                           "about another; nothing about it is released or changed.")


class Requests:
    def __init__(self, store: Store, pseudonyms: Pseudonymizer) -> None:
        self.store = store
        self.pseudonyms = pseudonyms

    async def submit(self, access: Access, user_id: str, kind: RequestKind, regime: Regime, verification: str,
                     details: str | None) -> RequestView:
        if kind not in KINDS:
            raise InvalidArgument(f"Unknown request kind {kind!r}.", f"Kinds: {', '.join(KINDS)}.")
        if regime not in REGIMES:
            raise InvalidArgument(f"Unknown regime {regime!r}.", f"Regimes: {', '.join(REGIMES)}.")
        verified = _text("verification", verification, MAX_VERIFICATION) or UNVERIFIED
        said = _text("details", details, MAX_EVIDENCE)
        # Only a privacy officer's word verifies the subject; anyone else's is kept as what they said it was.
        status: RequestStatus = "verified" if verified != UNVERIFIED and OFFICER in access.caller.roles \
            else "received"
        async with self.store.write() as repo:
            if not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            request = SubjectRequest(
                id=None, user_id=user_id, subject=await self.pseudonyms.subject(user_id), kind=kind, regime=regime,
                requested_by=access.caller.name, verification=verified, status=status, reason=None, details=said,
                created_at=access.now, updated_at=access.now, due_at=due_date(regime, access.now))
            request = replace(request, id=await repo.add_request(request))
        return _view(request, access)

    async def update(self, access: Access, request_id: int, status: RequestStatus, reason: str | None,
                     verification: str | None) -> RequestView:
        if status not in STATUSES:
            raise InvalidArgument(f"Unknown status {status!r}.", f"Statuses: {', '.join(STATUSES)}.")
        reason = _text("reason", reason, MAX_EVIDENCE)
        verification = _text("verification", verification, MAX_VERIFICATION)
        if status == "denied" and reason is None:
            raise InvalidArgument("A denial needs a reason the subject can be told. Nothing was changed.",
                                  "Pass reason, e.g. 'identity could not be verified'.")
        if status != "denied" and reason is not None:
            raise InvalidArgument("reason is for denials only. Nothing was changed.")
        async with self.store.write() as repo:
            request = await self._find(repo, request_id)
            _bound_to(access, request)
            allowed = TRANSITIONS[request.status]
            if status not in allowed:
                raise InvalidArgument(
                    f"Request {request_id} is {request.status!r} and cannot become {status!r}. Nothing was changed.",
                    f"From {request.status!r}: {', '.join(allowed)}." if allowed else "It is closed.")
            if status == "verified" and verification is None and request.verification == UNVERIFIED:
                raise InvalidArgument("Say how the subject was verified. Nothing was changed.",
                                      "Pass verification, e.g. 'email link' or 'logged-in session'.")
            request = replace(request, status=status, reason=reason, updated_at=access.now,
                              verification=verification or request.verification)
            await repo.update_request(request)
        return _view(request, access)

    async def get(self, access: Access, request_id: int) -> RequestView:
        _reader_scope(access)
        async with self.store.read() as repo:
            request = await self._find(repo, request_id)
        _bound_to(access, request)
        return _view(request, access)

    async def list(self, access: Access, user_id: str | None, status: RequestStatus | None,
                   overdue: bool) -> RequestListView:
        if status is not None and status not in STATUSES:
            raise InvalidArgument(f"Unknown status {status!r}.", f"Statuses: {', '.join(STATUSES)}.")
        bound = _reader_scope(access)
        async with self.store.read() as repo:
            found = await repo.requests(bound or user_id, status)
        views = [_view(r, access) for r in found if not overdue or r.overdue(access.now)]
        return RequestListView(requests=views)

    async def deletion(self, access: Access, request_id: int, user_id: str) -> SubjectRequest:
        """The verified deletion request of ``user_id`` an erasure carries out; refused (nothing erased) otherwise."""
        async with self.store.read() as repo:
            request = await self._find(repo, request_id)
        _bound_to(access, request)
        if request.user_id != user_id or request.kind != "deletion":
            raise InvalidArgument(f"Request {request_id} is not a deletion request of {user_id!r}. Nothing was erased.",
                                  "list_requests(user_id=...) shows the user's requests.")
        if request.status not in ("verified", "in_progress"):
            raise InvalidArgument(
                f"Request {request_id} is {request.status!r}: only a verified request is carried out. Nothing was "
                "erased.", "Verify the subject first: update_request(request_id, status='verified', verification=...).")
        return request

    async def close(self, access: Access, request: SubjectRequest, receipt: dict[str, Any]) -> None:
        """Mark the request completed and keep the erasure's receipt with it (it holds no personal data)."""
        async with self.store.write() as repo:
            await repo.update_request(replace(request, status="completed", updated_at=access.now, receipt=receipt))

    @staticmethod
    async def _find(repo: Repositories, request_id: int) -> SubjectRequest:
        request = await repo.request(request_id)
        if request is None:
            raise InvalidArgument(f"No request {request_id} exists.", "list_requests shows the requests there are.")
        return request
