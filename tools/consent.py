"""Consent tools."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..domain.consent import SALE_OPT_OUT_SOURCES
from ..domain.limits import MAX_EVIDENCE, MAX_SOURCE
from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.views import ConsentView, StandingRecordView
from .arguments import Purpose, Timestamp

Signal = Literal[SALE_OPT_OUT_SOURCES]  # type: ignore[valid-type]


@tool(title="Check consent", purpose="service")
async def check_consent(scope: Scope, user_id: UserId, purpose: Purpose) -> ConsentView:
    """Whether the user's data may be used for a purpose now, and why."""
    return await scope.app.consents.check(scope.access, user_id, purpose)


@tool(title="Record consent", role="writer", purpose="service", read_only=False, idempotent=True)
async def record_consent(
    scope: Scope,
    user_id: UserId,
    purpose: Purpose,
    granted: Annotated[bool, Field(description="True to grant; false to deny or withdraw.")],
    source: Annotated[str, Field(max_length=MAX_SOURCE, description="Where the choice was made, e.g. "
                                 "'chat:shopping-assistant'; 'do_not_sell_or_share' or 'global_privacy_control' "
                                 "for an opt-out of sale or sharing.")],
    expires_at: Annotated[Timestamp | None, Field(description="When a grant lapses (ISO 8601 with zone).")] = None,
    evidence: Annotated[str | None, Field(max_length=MAX_EVIDENCE, description="What the user was shown and said; "
                                          "required to grant wellbeing.")] = None,
) -> ConsentView:
    """Record the user's consent choice for a purpose in the append-only ledger. A grant only for a purpose this
    caller acts for (a privacy officer: any purpose); a denial or withdrawal for any purpose."""
    return await scope.app.consents.record(scope.access, user_id, purpose, granted, source, expires_at, evidence)


@tool(title="Record a privacy signal", role="writer", purpose="service", read_only=False, idempotent=True)
async def record_privacy_signal(
    scope: Scope,
    user_id: UserId,
    signal: Annotated[Signal, Field(
        description="global_privacy_control: the user's browser sent a Global Privacy Control signal (Sec-GPC: 1); "
                    "do_not_sell_or_share: the user asked not to have their data sold or shared (CCPA).")],
    source: Annotated[str, Field(max_length=MAX_SOURCE, description="Where the signal was received, e.g. "
                                 "'web:checkout' or 'email:privacy-office'.")],
    evidence: Annotated[str | None, Field(max_length=MAX_EVIDENCE, description="What was received, e.g. the "
                                          "request header or the user's words.")] = None,
) -> StandingRecordView:
    """Record an opt-out of sale or sharing: it denies marketing, and any purpose that sells or shares data, over
    every grant, earlier or later, until the same signal is lifted with record_consent(granted=true,
    source=<signal>). Any writer may record it."""
    return await scope.app.consents.record_standing(scope.access, user_id, signal, source, evidence)


Where = Annotated[str, Field(max_length=MAX_SOURCE, description="Where the request was received, e.g. "
                             "'chat:support-assistant' or 'email:privacy-office'.")]
Evidence = Annotated[str | None, Field(max_length=MAX_EVIDENCE, description="What the user asked, in their words, "
                                       "or the review that lifts it.")]
Lift = Annotated[bool, Field(description="True to lift an earlier one (privacy officer only).")]


@tool(title="Restrict processing", role="writer", purpose="service", read_only=False, idempotent=True)
async def restrict_processing(scope: Scope, user_id: UserId, source: Where, evidence: Evidence = None,
                              lift: Lift = False) -> StandingRecordView:
    """Record the user's restriction of processing (GDPR Art. 18): their data stays stored, but until it is lifted
    no purpose that needs consent may use it, over every grant: no learning, no similarity (as query or as result),
    no recommendations, no predictions, no marketing. Any writer records it; lifting needs the privacy officer."""
    return await scope.app.consents.record_standing(scope.access, user_id, "restriction", source, evidence, lift)


@tool(title="Object to profiling", role="writer", purpose="service", read_only=False, idempotent=True)
async def object_to_profiling(scope: Scope, user_id: UserId, source: Where, evidence: Evidence = None,
                              lift: Lift = False) -> StandingRecordView:
    """Record the user's objection to profiling (GDPR Art. 21): over every grant, the user leaves similarity (as
    query and as result) and the shared model's training at once, until it is lifted. Any writer records it;
    lifting needs the privacy officer."""
    return await scope.app.consents.record_standing(scope.access, user_id, "objection", source, evidence, lift)
