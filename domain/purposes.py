"""The closed set of purposes: what each may use and on what legal basis.

This table is the purposes policy; it is published as the ``policy://purposes`` resource.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import categories as cat

Basis = Literal["contract", "consent", "explicit_consent"]


@dataclass(frozen=True, slots=True)
class Purpose:
    name: str
    basis: Basis
    description: str
    uses: tuple[str, ...]
    needs_identifiers: bool = False
    individual: bool = True  # False: aggregates only, never one identifiable person
    opted_out_by_sale_signals: bool = False  # CCPA do-not-sell-or-share and Global Privacy Control deny it

    @property
    def needs_consent(self) -> bool:
        return self.basis != "contract"

    def may_use(self, category: str) -> bool:
        return cat.covered_by_any(self.uses, category)


PURPOSES: dict[str, Purpose] = {
    p.name: p
    for p in (
        Purpose(
            "service", "contract",
            "Running the service the person asked for: addressing them, their language, how to reach them, "
            "and respecting their consent choices.",
            (cat.NAME, cat.DEMOGRAPHIC + ".language", cat.PREFERENCE + ".communication", cat.CONSENT),
            needs_identifiers=True,
        ),
        Purpose(
            "personalization", "consent",
            "Tailoring replies and pages to the person: preferences, behaviour summary and demographics; "
            "no contact details and no precise location.",
            (cat.PREFERENCE, cat.BEHAVIOR, cat.DEMOGRAPHIC, cat.LOCATION + ".country", cat.LOCATION + ".region"),
        ),
        Purpose(
            "recommendation", "consent",
            "Recommending products and content from preferences, behaviour and segments.",
            (cat.PREFERENCE, cat.BEHAVIOR, cat.SEGMENT),
        ),
        Purpose(
            "profiling", "consent",
            "Automated profiling (GDPR Art. 22): similar users, clustering and predictions from preferences, "
            "behaviour, psychographics, inferred data and segments.",
            (cat.PREFERENCE, cat.BEHAVIOR, cat.PSYCHOGRAPHIC, cat.INFERRED, cat.SEGMENT),
        ),
        Purpose(
            "wellbeing", "explicit_consent",
            "Wellbeing support from emotional patterns (sensitive data; explicit consent with evidence).",
            (cat.EMOTIONAL,),
        ),
        Purpose(
            "analytics", "consent",
            "Aggregate statistics only, never about one identifiable person.",
            (cat.PREFERENCE, cat.BEHAVIOR, cat.SEGMENT, cat.DEMOGRAPHIC),
            individual=False,
        ),
        Purpose(
            "marketing", "consent",
            "Marketing messages: contact details, preferences and segments. A do-not-sell-or-share (CCPA) or "
            "Global Privacy Control signal denies it.",
            (cat.CONTACT, cat.PREFERENCE, cat.SEGMENT),
            needs_identifiers=True,
            opted_out_by_sale_signals=True,
        ),
    )
}

PURPOSE_NAMES = tuple(PURPOSES)
CONSENT_PURPOSES = tuple(name for name, p in PURPOSES.items() if p.needs_consent)
