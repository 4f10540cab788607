"""Data subject request tools: submit for the subject; verify, answer, deny and read as the privacy officer."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..domain.limits import MAX_EVIDENCE, MAX_VERIFICATION
from ..domain.requests import Regime, RequestKind, RequestStatus
from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.views import RequestListView, RequestView

RequestId = Annotated[int, Field(ge=1, description="The request's id, as submit_request or list_requests gave it.")]
Verification = Annotated[str, Field(max_length=MAX_VERIFICATION, description="How the subject was verified, e.g. "
                                    "'email link' or 'logged-in session'; 'unverified' if they were not.")]


@tool(title="Submit a data subject request", role="writer", purpose="service", read_only=False)
async def submit_request(
    scope: Scope,
    user_id: UserId,
    kind: Annotated[RequestKind, Field(description="access, deletion, correction, restriction, objection (to "
                                       "profiling) or opt_out_sale (of sale or sharing).")],
    regime: Annotated[Regime, Field(description="The law it is made under: gdpr (answer due in one month) or ccpa "
                                    "(45 days).")] = "gdpr",
    verification: Verification = "unverified",
    details: Annotated[str | None, Field(max_length=MAX_EVIDENCE, description="What the user asked, in their "
                                         "words.")] = None,
) -> RequestView:
    """Record a request the user made to exercise a privacy right, with its legal due date. It starts 'received'
    (or 'verified' when a privacy officer says how the user was verified); the privacy officer answers it."""
    return await scope.app.requests.submit(scope.access, user_id, kind, regime, verification, details)


@tool(title="Update a data subject request", role="privacy_officer", purpose="service", read_only=False)
async def update_request(
    scope: Scope,
    request_id: RequestId,
    status: Annotated[RequestStatus, Field(description="The next status: received -> verified or denied; verified "
                                           "-> in_progress, completed or denied; in_progress -> completed or "
                                           "denied.")],
    reason: Annotated[str | None, Field(max_length=MAX_EVIDENCE, description="Why it is denied; required for "
                                        "denied, only for denied.")] = None,
    verification: Annotated[str | None, Field(max_length=MAX_VERIFICATION, description="How the subject was "
                                              "verified; needed to verify an unverified request.")] = None,
) -> RequestView:
    """Move a request on in its lifecycle (privacy officer)."""
    return await scope.app.requests.update(scope.access, request_id, status, reason, verification)


@tool(title="Get a data subject request", purpose="service")
async def get_request(scope: Scope, request_id: RequestId) -> RequestView:
    """One request with its status, due date and (for an erasure) receipt. For the privacy officer; a caller bound
    to one user reads that user's requests only."""
    return await scope.app.requests.get(scope.access, request_id)


@tool(title="List data subject requests", purpose="service")
async def list_requests(
    scope: Scope,
    user_id: UserId | None = None,
    status: Annotated[RequestStatus | None, Field(description="Only requests in this status.")] = None,
    overdue: Annotated[bool, Field(description="Only open requests past their due date.")] = False,
) -> RequestListView:
    """Requests, oldest first, with overdue ones flagged. For the privacy officer; a caller bound to one user
    lists that user's requests only."""
    return await scope.app.requests.list(scope.access, user_id, status, overdue)
