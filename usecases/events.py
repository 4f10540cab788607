"""Recording behavioural events: validated as a whole, each with a basis (``usecases/collection.py``), written in
one transaction or not at all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.errors import InvalidArgument, UnknownItem, UnknownUser
from ..domain.events import EVENT_TYPES, MAX_PROPERTIES, MAX_PROPERTY_BYTES, Event, check_properties
from ..domain.limits import MAX_BATCH
from ..domain.ports import Store
from ..domain.text import all_storable, is_storable
from ..domain.timestamps import parse_timestamp
from ..privacy.gate import Access
from .collection import Need, permitted, require_consent
from .learning import PreferenceLearner
from .vectors import IndexUpkeep
from .views import EventsRecorded

CLOCK_SKEW = timedelta(minutes=5)
NEEDS = {name: Need(f"a {name!r} event", spec.collected, spec.category) for name, spec in EVENT_TYPES.items()}


@dataclass(frozen=True, slots=True)
class EventInput:
    user_id: str
    event_type: str
    item_id: str | None = None
    properties: dict[str, Any] | None = None
    occurred_at: str | None = None


def parse_time(raw: str | None, now: datetime, retention_days: int, where: str) -> datetime:
    if raw is None:
        return now
    value = parse_timestamp(raw, f"{where}occurred_at")
    if value > now + CLOCK_SKEW:
        raise InvalidArgument(f"{where}occurred_at {raw!r} is in the future.")
    if value < now - timedelta(days=retention_days):
        raise InvalidArgument(f"{where}occurred_at {raw!r} is older than the retention period "
                              f"({retention_days} days) and would be purged at once.")
    return value


def validate(raw: EventInput, now: datetime, retention_days: int, where: str = "") -> Event:
    spec = EVENT_TYPES.get(raw.event_type)
    if spec is None:
        raise InvalidArgument(f"{where}Unknown event_type {raw.event_type!r}.",
                              f"Event types: {', '.join(EVENT_TYPES)}.")
    if spec.needs_item and not raw.item_id:
        raise InvalidArgument(f"{where}Event type {raw.event_type!r} needs an item_id.")
    if raw.item_id and not is_storable(raw.item_id):
        raise InvalidArgument(f"{where}item_id holds a NUL character or an unpaired surrogate.")
    properties = raw.properties or {}
    if len(properties) > MAX_PROPERTIES:
        raise InvalidArgument(f"{where}properties has {len(properties)} keys; at most {MAX_PROPERTIES}.")
    try:
        size = len(json.dumps(properties))
    except (TypeError, ValueError):
        raise InvalidArgument(f"{where}properties must be plain JSON.") from None
    if size > MAX_PROPERTY_BYTES:
        raise InvalidArgument(f"{where}properties is {size} bytes as JSON; at most {MAX_PROPERTY_BYTES}.")
    if not all_storable(properties):
        raise InvalidArgument(f"{where}properties holds a NUL character or an unpaired surrogate.")
    try:
        check_properties(raw.event_type, properties)
    except InvalidArgument as exc:
        raise InvalidArgument(where + exc.message, exc.next_step) from None
    occurred = parse_time(raw.occurred_at, now, retention_days, where)
    return Event(raw.user_id, raw.event_type, occurred, raw.item_id or None, properties)


class Events:
    def __init__(self, store: Store, retention_days: int, learner: PreferenceLearner, upkeep: IndexUpkeep) -> None:
        self.store = store
        self.retention_days = retention_days
        self.learner = learner
        self.upkeep = upkeep

    async def record(self, access: Access, raw: Sequence[EventInput]) -> EventsRecorded:
        if not raw:
            raise InvalidArgument("events is empty.", "Pass at least one event.")
        if len(raw) > MAX_BATCH:
            raise InvalidArgument(f"At most {MAX_BATCH} events per call; got {len(raw)}.",
                                  f"Split the batch into calls of {MAX_BATCH} or fewer.")
        where = [f"events[{i}]: " if len(raw) > 1 else "" for i in range(len(raw))]
        events = [validate(e, access.now, self.retention_days, w) for e, w in zip(raw, where, strict=True)]
        writes = [permitted(access, e.user_id, NEEDS[e.event_type], w) for e, w in zip(events, where, strict=True)]
        async with self.store.write() as repo:
            users = {e.user_id for e in events}
            missing = users - await repo.existing_profiles(sorted(users))
            if missing:
                raise UnknownUser(sorted(missing)[0])
            item_ids = {e.item_id for e in events if e.item_id}
            unknown = item_ids - await repo.existing_items(sorted(item_ids))
            if unknown:
                raise UnknownItem(f"Unknown item_id {sorted(unknown)[0]!r}.",
                                  "Record events only for items in the catalog.")
            await require_consent(repo, access, writes)  # one event without a basis refuses the batch
            ids = await repo.add_events(events, access.now)
            learning = await self.learner.on_events(repo, ids, events)
        if learning == "applied":
            await self.upkeep.refresh(users)
        return EventsRecorded(recorded=len(ids), event_ids=ids, learning=learning)
