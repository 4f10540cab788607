"""The closed set of purposes: what each may use and on what legal basis; and what data is collected for.

This table is the purposes policy; it is published as the ``policy://purposes`` resource. Each event type and
writable attribute declares its ``Collection`` beside its definition (``domain/events.py``, ``domain/fields.py``);
that table is published in ``schema://profile``.
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
    ended_by_objection: bool = False  # an objection to profiling (GDPR Art. 21) denies it

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
            ended_by_objection=True,
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
# Selling or sharing personal data (cross-context advertising) happens only for these purposes.
SALE_SIGNAL_PURPOSES = tuple(name for name, p in PURPOSES.items() if p.opted_out_by_sale_signals)


@dataclass(frozen=True, slots=True)
class Collection:
    """What a kind of data is collected (stored) for: any one of ``purposes`` is a basis to store it, when the
    caller acts for that purpose and the user consents to it (or it rests on the contract)."""

    purposes: tuple[str, ...]

    def __post_init__(self) -> None:
        bases = {PURPOSES[p].basis for p in self.purposes}  # a KeyError names an unknown purpose
        assert self.purposes and len(bases) == 1, f"{self.purposes}: one or more purposes on one legal basis"

    @property
    def basis(self) -> Basis:
        return PURPOSES[self.purposes[0]].basis

    def fits(self, category: str) -> bool:
        """Consent is asked only for what the purpose uses: a consent-based collection purpose may use the
        category it collects. The contract keeps what running the service needs (contact details, orders, a
        delivery address), whether or not a read for it discloses them."""
        return self.basis == "contract" or all(PURPOSES[p].may_use(category) for p in self.purposes)
