"""A learned preference: a weight on an attribute token, with its evidence. The learning math is in learning/."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from . import categories as cat

CONFIDENCE_SCALE = 3.0  # evidence at which confidence reaches 1 - 1/e
ITEM_FACET = "item"  # an item itself is a token too (``item:<id>``): the collaborative model learns from these


def decay(weight: float, seconds: float, half_life_days: float) -> float:
    """``weight`` after ``seconds`` have passed (negative seconds grow it: moving a signal forward in time)."""
    return float(weight * 2.0 ** (-seconds / (half_life_days * 86_400.0)))


def confidence(evidence: int) -> float:
    """Confidence in an inferred weight grows with the number of signals behind it."""
    return 1.0 - math.exp(-evidence / CONFIDENCE_SCALE)


@dataclass(frozen=True, slots=True)
class Preference:
    token: str
    source: str  # "explicit" or "implicit"
    weight: float  # as of ``ref_at``
    ref_at: datetime
    evidence_count: int
    evidence: tuple[int, ...]  # the most recent event ids behind it (implicit only)
    updated_at: datetime

    @property
    def category(self) -> str:
        """What it is data of: a statement, a weight learned from behaviour, or (an item token) the behaviour."""
        if self.facet == ITEM_FACET:
            return cat.BEHAVIOR
        return cat.STATED_PREFERENCE if self.source == "explicit" else cat.LEARNED_PREFERENCE

    @property
    def facet(self) -> str:
        return self.token.split(":", 1)[0]

    @property
    def value(self) -> str:
        return self.token.split(":", 1)[1] if ":" in self.token else self.token

    def weight_at(self, when: datetime, half_life_days: float) -> float:
        if self.source == "explicit":
            return self.weight  # what a person states does not fade; they can restate or retract it
        return decay(self.weight, (when - self.ref_at).total_seconds(), half_life_days)

    def confidence(self) -> float:
        return 1.0 if self.source == "explicit" else confidence(self.evidence_count)

    @classmethod
    def stated(cls, token: str, weight: float, at: datetime) -> Preference:
        """What the user said (``likes`` / ``dislikes``), as of when they said it."""
        return cls(token, "explicit", weight, at, 1, (), at)


@dataclass(frozen=True, slots=True)
class StoredVector:
    """A user's vector as stored: which embedder made it, and the weights' time it is computed as of."""

    user_id: str
    model: str
    data: bytes  # float32, little-endian
    as_of: datetime
