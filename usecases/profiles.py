"""Reading the gated profile view and writing attributes with provenance, each with a basis
(``usecases/collection.py``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..domain import categories as cat
from ..domain.errors import InvalidArgument, UnknownUser
from ..domain.events import summarize_behavior, summarize_emotions
from ..domain.fields import FIELDS, INFERENCE, SECTIONS, in_section
from ..domain.limits import MAX_ATTRIBUTES
from ..domain.ports import Store
from ..domain.profiles import Attribute, check_source, coerce_value, winning
from ..privacy.gate import Access
from .collection import Need, permitted, require_consent
from .learning import PreferenceLearner
from .vectors import IndexUpkeep
from .views import (
    SECTION_MODELS,
    AttributeView,
    BehaviorView,
    EmotionalView,
    HeldSection,
    ProfileUpdate,
    ProfileView,
)

SECTION_CATEGORIES = {s: tuple({f.category for f in in_section(s)}) for s in SECTIONS}
RECENT_WINDOW = 500  # events the behaviour patterns are read from
NEEDS = {f.name: Need(f"attribute {f.name!r}", f.collected, f.category) for f in FIELDS if f.collected is not None}


class Profiles:
    def __init__(self, store: Store, learner: PreferenceLearner, upkeep: IndexUpkeep) -> None:
        self.store = store
        self.learner = learner
        self.upkeep = upkeep

    async def view(self, access: Access, user_id: str, sections: Sequence[str] | None) -> ProfileView:
        wanted = list(SECTIONS) if not sections else list(dict.fromkeys(sections))
        unknown = [s for s in wanted if s not in SECTIONS]
        if unknown:
            raise InvalidArgument(f"Unknown sections {unknown}.", f"Sections: {', '.join(SECTIONS)}.")
        # Read only what this purpose may use: a section outside it is reported as withheld, not loaded.
        usable = {s for s in wanted if any(access.purpose.may_use(c) for c in SECTION_CATEGORIES[s])}
        async with self.store.read() as repo:
            attributes = await repo.attributes(user_id)
            if not attributes and not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            recent = (await repo.recent_events(user_id, RECENT_WINDOW, properties=False)
                      if {"behavior", "emotional"} & usable else [])
            counts: dict[str, int] = {}
            if "behavior" in usable:
                # The window holds every event of most users; count in the database only beyond it.
                counts = (dict(Counter(e.event_type for e in recent)) if len(recent) < RECENT_WINDOW
                          else await repo.event_counts(user_id))
        best = winning(attributes)
        parts: dict[str, Any] = {}
        for section, model in SECTION_MODELS.items():
            if section not in wanted:
                continue
            parts[section] = model(**{
                name: AttributeView(value=a.value, source=a.source, confidence=a.confidence,
                                    observed_at=a.observed_at)
                for name in model.model_fields if (a := best.get(name)) is not None
            })
        if "behavior" in wanted:
            b = summarize_behavior(counts, recent)
            parts["behavior"] = BehaviorView(
                event_counts=b.event_counts, purchases=b.purchases, first_seen=b.first_seen, last_seen=b.last_seen,
                active_hours_utc=b.active_hours, active_weekdays=b.active_weekdays, recent_items=b.recent_items)
        if "emotional" in wanted:
            e = summarize_emotions(recent)
            parts["emotional"] = EmotionalView(check_ins=e.check_ins, mood_counts=e.mood_counts,
                                               last_mood=e.last_mood, average_intensity=e.average_intensity)
        return ProfileView(user_id=user_id, purpose=access.purpose.name, **parts)

    async def held(self, user_id: str) -> list[HeldSection]:
        """Which sections hold data about the user, by field name, without the values."""
        async with self.store.read() as repo:
            attributes = await repo.attributes(user_id)
            if not attributes and not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            counts = await repo.event_counts(user_id)
        names = {a.field for a in attributes}
        held = []
        for section in SECTIONS:
            specs = in_section(section)
            if section == "behavior":
                present = ["behavior"] if any(k != "mood_check_in" for k in counts) else []
            elif section == "emotional":
                present = ["emotional"] if counts.get("mood_check_in") else []
            else:
                present = [f.name for f in specs if f.name in names]
            if present:
                top = ".".join(specs[0].category.split(".")[:2])
                held.append(HeldSection(section=section, category=top, fields=present))
        return held

    async def update(self, access: Access, user_id: str, attributes: Mapping[str, Any], source: str,
                     confidence: float | None, create: bool) -> ProfileUpdate:
        check_source(source)
        if not attributes:
            raise InvalidArgument("attributes is empty.", "Pass at least one attribute, e.g. {'likes': ['lavender']}.")
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidArgument(f"At most {MAX_ATTRIBUTES} attributes per call; got {len(attributes)}.",
                                  "Split the update into several calls.")
        if confidence is None:
            confidence = 1.0 if source == "explicit" else 0.7
        if not 0.0 <= confidence <= 1.0:
            raise InvalidArgument("confidence must be between 0 and 1.")
        values = [Attribute(name, coerce_value(name, raw), source, confidence, access.now)
                  for name, raw in attributes.items()]
        writes = [permitted(access, user_id, NEEDS[name]) for name in attributes]
        if source.startswith("inferred:"):
            writes.append(permitted(access, user_id, Need(f"an inferred value (source {source!r})", INFERENCE,
                                                          cat.INFERRED)))
        async with self.store.write() as repo:
            created = not await repo.profile_exists(user_id)
            if created and not create:
                raise UnknownUser(user_id)
            await require_consent(repo, access, writes)  # a new profile has no consent yet: contract data only
            if created:
                await repo.create_profile(user_id, access.now)
            await repo.put_attributes(user_id, values)
            stated = source == "explicit" and bool({"likes", "dislikes"} & set(attributes))
            if stated:
                await self.learner.on_statement(repo, user_id, access.now)
        if stated:
            await self.upkeep.refresh([user_id])
        return ProfileUpdate(user_id=user_id, created=created, updated=sorted(attributes), source=source)
