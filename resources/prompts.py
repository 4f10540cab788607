"""Prompts. Each is a gated result rendered as text, so a prompt shows only what the gate released."""

from __future__ import annotations

from typing import Any

from ..domain.fields import ATTRIBUTE_SECTIONS
from ..privacy.subjects import UserId
from ..privacy.surface import prompt
from ..tools.arguments import Purpose
from ..usecases.app import Scope
from ..usecases.views import PrivacySummaryView, ProfileView


def _value(v: Any) -> str:
    return ", ".join(v) if isinstance(v, list) else str(v)


def render_personalize(view: ProfileView) -> str:
    lines = [
        f"Profile of user {view.user_id} for purpose '{view.purpose}'. Ground your reply on these facts only;",
        "do not guess what is missing or withheld.",
    ]
    for section in ATTRIBUTE_SECTIONS:
        part = getattr(view, section)
        if part is None:
            continue
        facts = [f"{name.replace('_', ' ')}: {_value(a.value)} ({a.source})"
                 for name, a in part if a is not None]
        if facts:
            lines.append(f"- {section}: " + "; ".join(facts))
    if view.behavior is not None:
        b = view.behavior
        counts = ", ".join(f"{k} {v}" for k, v in sorted(b.event_counts.items()))
        lines.append(f"- behaviour: {counts or 'no events'}; purchases {b.purchases}; "
                     f"recent items: {', '.join(b.recent_items) or 'none'}")
    if view.emotional is not None:
        e = view.emotional
        lines.append(f"- emotional patterns: {e.check_ins} check-ins; last mood {e.last_mood or 'unknown'}")
    if view.withheld:
        lines.append("Withheld (do not ask the user for these unless the purpose needs them): "
                     + "; ".join(f"{w.field} ({w.reason})" for w in view.withheld))
    return "\n".join(lines)


def render_privacy_summary(view: PrivacySummaryView) -> str:
    lines = [f"What mnky-profiles holds about user {view.user_id}, in plain words for the user."]
    if view.held is not None:
        for h in view.held:
            lines.append(f"- {h.section} ({h.category}): {', '.join(h.fields)}")
        if not view.held:
            lines.append("- nothing beyond the account itself")
    lines.append("Consent choices:")
    for d in view.decisions:
        if d.allowed is not None:
            lines.append(f"- {d.purpose}: {'allowed' if d.allowed else 'not allowed'} ({d.explanation})")
    if view.withheld:
        lines.append("Not shown to this assistant: " + "; ".join(f"{w.field} ({w.reason})" for w in view.withheld))
    lines.append("The user's rights: they can ask for a copy of everything held (access), for erasure (deletion), "
                 "for a correction, for restriction of processing, to object to profiling, or to opt out of sale "
                 "or sharing. An assistant records the request with submit_request; a privacy officer verifies it "
                 "and has until its legal due date to carry it out (one month under GDPR, 45 days under CCPA). A "
                 "restriction, an objection or a Global Privacy Control / do-not-sell signal can also be recorded "
                 "at once (restrict_processing, object_to_profiling, record_privacy_signal); consent to any purpose "
                 "can be withdrawn at any time with record_consent.")
    return "\n".join(lines)


@prompt(title="Personalize a reply", render=render_personalize)
async def personalize(scope: Scope, user_id: UserId, purpose: Purpose) -> ProfileView:
    """A minimized profile summary to ground a personalized reply on."""
    return await scope.app.profiles.view(scope.access, user_id, None)


@prompt(title="What do you know about me?", render=render_privacy_summary, purpose="service")
async def privacy_summary(scope: Scope, user_id: UserId) -> PrivacySummaryView:
    """What is held about the user and their consent choices, in plain words."""
    ledger = await scope.app.consents.ledger(scope.access, user_id)
    return PrivacySummaryView(user_id=user_id, held=await scope.app.profiles.held(user_id),
                              decisions=ledger.decisions)
