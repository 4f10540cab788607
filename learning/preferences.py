"""Preference weights from signals: per-event-type weights, negative signals, exponential time decay.

A preference is a weight on an attribute token (``note:lavender``, ``family:woody``). Implicit weights are sums
of decayed signals, ``w(T) = sum_i s_i * 2 ** (-(T - t_i) / half_life)``, so the order in which signals arrive
does not change the result: applying them one by one (realtime) or all at once (batch) ends in the same state.
Explicit statements ("likes lavender") are kept apart and outrank what was inferred.

Learning is itself processing for a purpose: a user's signals are learned from only while they consent to
``LEARNING`` (a purchase is stored under the contract; learning a taste from it is personalization or profiling).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..domain.events import Event

# The record lives in the domain (storage reads and writes it); the math on it lives here.
from ..domain.preferences import ITEM_FACET, Preference, decay
from ..domain.profiles import Attribute, winning
from ..domain.purposes import Collection
from .catalog import Catalog

# The purposes preferences are learned for: consent to either lets a user's signals be learned from.
LEARNING = Collection(("personalization", "profiling"))

# Signal strength per event type, spread over the item's tokens. Negative values are negative signals.
EVENT_WEIGHTS: Mapping[str, float] = {
    "view": 0.1,
    "click": 0.2,
    "add_to_cart": 0.5,
    "purchase": 1.0,
    "return": -1.0,
    "dwell": 0.05,  # per 30 seconds, up to DWELL_CAP
    "search": 0.3,  # on the tokens the query names
}
# The event types that give a preference signal: the weighted ones and ratings.
LEARNED_EVENTS = frozenset(EVENT_WEIGHTS) | {"rating"}
DWELL_CAP = 0.3
RATING_SCALE = 1.0  # a rating r in 1..5 gives (r - 3) / 2 * RATING_SCALE: 5 -> +1, 1 -> -1
EXPLICIT_WEIGHT = 1.0
EVIDENCE_KEPT = 10  # ids of the most recent events behind a weight


def signal(event_type: str, properties: Mapping[str, Any]) -> float:
    """The signed strength of one event, before it is spread over the item's tokens."""
    if event_type == "rating":
        return (float(properties["rating"]) - 3.0) / 2.0 * RATING_SCALE
    if event_type == "dwell":
        return min(DWELL_CAP, EVENT_WEIGHTS["dwell"] * float(properties.get("seconds", 0)) / 30.0)
    return EVENT_WEIGHTS.get(event_type, 0.0)


@dataclass(frozen=True, slots=True)
class Signal:
    """One event's contribution to one token."""

    token: str
    strength: float
    at: datetime
    event_id: int


def apply(current: Preference | None, s: Signal, half_life_days: float) -> Preference:
    """Add one implicit signal to a weight. Order-independent: the reference time is the latest signal."""
    if current is None:
        return Preference(s.token, "implicit", s.strength, s.at, 1, (s.event_id,), s.at)
    ref = max(current.ref_at, s.at)
    weight = (decay(current.weight, (ref - current.ref_at).total_seconds(), half_life_days)
              + decay(s.strength, (ref - s.at).total_seconds(), half_life_days))
    evidence = tuple(sorted({*current.evidence, s.event_id}))[-EVIDENCE_KEPT:]
    return replace(current, weight=weight, ref_at=ref, evidence_count=current.evidence_count + 1,
                   evidence=evidence, updated_at=max(current.updated_at, s.at))


def effective(preferences: Iterable[Preference], when: datetime, half_life_days: float) -> dict[str, float]:
    """One weight per token as of ``when``: an explicit statement outranks whatever was inferred."""
    explicit: dict[str, float] = {}
    implicit: dict[str, float] = {}
    for p in preferences:
        (explicit if p.source == "explicit" else implicit)[p.token] = p.weight_at(when, half_life_days)
    return implicit | explicit


def reference_time(preferences: Iterable[Preference]) -> datetime | None:
    """The time a user's vector is computed as of: the newest reference time among their weights."""
    times = [p.ref_at for p in preferences]
    return max(times) if times else None


def tokens_for_statement(text: str, vocabulary: Mapping[str, list[str]]) -> list[str]:
    """Catalog tokens a stated like or dislike names: "lavender" -> ["note:lavender"]; else a free tag."""
    key = text.strip().lower()
    if ":" in key and key.split(":", 1)[0] in {t.split(":", 1)[0] for ts in vocabulary.values() for t in ts}:
        return [key]
    return vocabulary.get(key, [f"tag:{key}"])


def tokens_in_query(query: str, vocabulary: Mapping[str, list[str]]) -> list[str]:
    """Catalog tokens a search query names, matching single words and two-word values."""
    words = [w.strip(".,!?;:'\"()").lower() for w in query.split()]
    found: list[str] = []
    for phrase in words + [f"{a} {b}" for a, b in itertools.pairwise(words)]:
        for token in vocabulary.get(phrase, []):
            if token not in found:
                found.append(token)
    return found


def signals_for(event_id: int, event_type: str, item_id: str | None, properties: Mapping[str, Any], at: datetime,
                item_tokens: Mapping[str, Sequence[str]], vocabulary: Mapping[str, list[str]]) -> list[Signal]:
    """The signals one event gives: the full strength to the item, a share to each of its attribute tokens."""
    if event_type == "search":
        query = properties.get("query")
        if not isinstance(query, str):
            return []
        return [Signal(t, EVENT_WEIGHTS["search"], at, event_id) for t in tokens_in_query(query, vocabulary)]
    strength = signal(event_type, properties)
    if not strength or item_id is None:
        return []
    tokens = item_tokens.get(item_id, ())
    share = strength / math.sqrt(len(tokens)) if tokens else 0.0
    return [Signal(f"{ITEM_FACET}:{item_id}", strength, at, event_id)] + [
        Signal(t, share, at, event_id) for t in tokens]


def event_signals(events: Iterable[tuple[int, Event]], catalog: Catalog) -> list[Signal]:
    """Every signal of these (event id, event) pairs, in their order."""
    return [s for event_id, e in events for s in signals_for(
        event_id, e.event_type, e.item_id, e.properties, e.occurred_at, catalog.item_tokens, catalog.vocabulary)]


def stated_weights(attributes: Iterable[Attribute], vocabulary: Mapping[str, list[str]]) -> dict[str, float]:
    """The explicit weights of what the user says: +1 on the tokens their stated likes name, -1 on their dislikes
    (the winning explicit value of each field)."""
    stated = winning([a for a in attributes if a.source == "explicit"])
    wanted: dict[str, float] = {}
    for name, sign in (("likes", EXPLICIT_WEIGHT), ("dislikes", -EXPLICIT_WEIGHT)):
        attribute = stated.get(name)
        for text in (attribute.value if attribute and isinstance(attribute.value, list) else []):
            for token in tokens_for_statement(text, vocabulary):
                wanted[token] = sign
    return wanted


def attribute_weights(preferences: Iterable[Preference], when: datetime, half_life_days: float) -> dict[str, float]:
    """Token -> weight as of ``when`` on the attribute tokens (not the items): what content scores and shared
    likes read."""
    return {t: w for t, w in effective(preferences, when, half_life_days).items() if not is_item(t)}


def item_history(preferences: Iterable[Preference], when: datetime, half_life_days: float) -> dict[str, float]:
    """Item -> decayed interaction strength as of ``when``, from the ``item:`` tokens (what the item model reads)."""
    weights = effective((p for p in preferences if is_item(p.token)), when, half_life_days)
    return {t.split(":", 1)[1]: w for t, w in weights.items() if w > 0}


def fold(current: Mapping[str, Preference], signals: Iterable[Signal], half_life_days: float
         ) -> dict[str, Preference]:
    """Implicit preferences after ``signals``; only the tokens they touch are returned."""
    changed: dict[str, Preference] = {}
    for s in signals:
        changed[s.token] = apply(changed.get(s.token) or current.get(s.token), s, half_life_days)
    return changed


def is_item(token: str) -> bool:
    return token.startswith(ITEM_FACET + ":")
