"""Behavioural events and the patterns derived from them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import categories as cat
from .errors import InvalidArgument
from .purposes import Collection

MAX_PROPERTIES = 32
MAX_PROPERTY_BYTES = 4096
MOODS = ("calm", "happy", "energized", "stressed", "anxious", "sad", "tired", "irritable")


@dataclass(frozen=True, slots=True)
class EventType:
    name: str
    description: str
    needs_item: bool
    collected: Collection  # the purposes it is stored for (schema://profile)
    required: tuple[str, ...] = ()  # required property names
    category: str = cat.BEHAVIOR  # what it is, as data: a caller stores only what it may see


# Why each event is collected. Orders and returns are records of the contract; browsing signals are stored to
# tailor the shop (personalization) or to profile (profiling), either consent will do; a mood check-in is
# special-category data (health), stored only with explicit consent to wellbeing.
ORDERS = Collection(("service",))
BROWSING = Collection(("personalization", "profiling"))
MOOD = Collection(("wellbeing",))

EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("view", "Viewed an item's page.", True, BROWSING),
        EventType("click", "Clicked an item in a list or message.", True, BROWSING),
        EventType("add_to_cart", "Added an item to the cart.", True, BROWSING),
        EventType("purchase", "Bought an item (properties: quantity, price).", True, ORDERS),
        EventType("rating", "Rated an item (properties: rating 1-5).", True, BROWSING, ("rating",)),
        EventType("return", "Returned a bought item.", True, ORDERS),
        EventType("search", "Searched the catalog (properties: query).", False, BROWSING, ("query",)),
        EventType("dwell", "Spent time on an item (properties: seconds).", True, BROWSING, ("seconds",)),
        EventType("feature_use", "Used an app feature (properties: feature).", False, BROWSING, ("feature",)),
        EventType("session", "Started a session (properties: channel).", False, BROWSING),
        EventType("mood_check_in", f"Checked in a mood (properties: mood in {', '.join(MOODS)}; intensity 1-5).",
                  False, MOOD, ("mood",), cat.EMOTIONAL),
    )
}
assert all(e.collected.fits(e.category) for e in EVENT_TYPES.values())


@dataclass(frozen=True, slots=True)
class Event:
    user_id: str
    event_type: str
    occurred_at: datetime
    item_id: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


def check_properties(event_type: str, properties: dict[str, Any]) -> None:
    """Per-type property rules; everything else stays free-form but bounded."""
    spec = EVENT_TYPES[event_type]
    missing = [p for p in spec.required if p not in properties]
    if missing:
        raise InvalidArgument(f"Event type {event_type!r} needs properties {missing}.", spec.description)
    if event_type == "rating":
        rating = properties["rating"]
        if isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 5:
            raise InvalidArgument("A rating event needs properties.rating as a number from 1 to 5.")
    if event_type == "dwell":
        seconds = properties["seconds"]
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 86_400:
            raise InvalidArgument("A dwell event needs properties.seconds as a number from 0 to 86400.")
    if event_type == "mood_check_in":
        if properties["mood"] not in MOODS:
            raise InvalidArgument(f"properties.mood must be one of {', '.join(MOODS)}.")
        intensity = properties.get("intensity", 3)
        if isinstance(intensity, bool) or not isinstance(intensity, int) or not 1 <= intensity <= 5:
            raise InvalidArgument("properties.intensity must be an integer from 1 to 5.")


@dataclass(frozen=True, slots=True)
class BehaviorSummary:
    event_counts: dict[str, int]
    first_seen: datetime | None
    last_seen: datetime | None
    purchases: int
    active_hours: list[int]  # the UTC hours with most activity, most active first
    active_weekdays: list[str]
    recent_items: list[str]


@dataclass(frozen=True, slots=True)
class EmotionalSummary:
    check_ins: int
    mood_counts: dict[str, int]
    last_mood: str | None
    average_intensity: float | None


WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def summarize_behavior(counts: dict[str, int], recent: list[Event]) -> BehaviorSummary:
    """``counts`` covers all events; ``recent`` (newest first) the window the patterns are read from."""
    behavioural = [e for e in recent if e.event_type != "mood_check_in"]
    hours = Counter(e.occurred_at.hour for e in behavioural)
    days = Counter(e.occurred_at.weekday() for e in behavioural)
    items: list[str] = []
    for e in behavioural:
        if e.item_id and e.item_id not in items:
            items.append(e.item_id)
    times = [e.occurred_at for e in behavioural]
    plain = {k: v for k, v in counts.items() if k != "mood_check_in"}
    return BehaviorSummary(
        event_counts=plain,
        first_seen=min(times) if times else None,
        last_seen=max(times) if times else None,
        purchases=plain.get("purchase", 0),
        active_hours=[h for h, _ in hours.most_common(3)],
        active_weekdays=[WEEKDAYS[d] for d, _ in days.most_common(2)],
        recent_items=items[:10],
    )


def summarize_emotions(recent: list[Event]) -> EmotionalSummary:
    moods = [e for e in recent if e.event_type == "mood_check_in"]
    intensities = [int(e.properties.get("intensity", 3)) for e in moods]
    return EmotionalSummary(
        check_ins=len(moods),
        mood_counts=dict(Counter(str(e.properties["mood"]) for e in moods)),
        last_mood=str(moods[0].properties["mood"]) if moods else None,
        average_intensity=round(sum(intensities) / len(intensities), 2) if intensities else None,
    )
