"""Behavioural event tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from ..domain.limits import MAX_BATCH, MAX_ID
from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.events import EventInput
from ..usecases.views import EventsRecorded
from .arguments import EventType, Timestamp

ItemId = Annotated[str | None, Field(max_length=MAX_ID, description="The catalog item, for item events.")]
Properties = Annotated[dict[str, Any] | None, Field(
    description="Event details, e.g. {\"rating\": 5} or {\"query\": \"vanilla candle\"}; at most 32 keys.")]
OccurredAt = Annotated[Timestamp | None, Field(description="When it happened (ISO 8601 with zone); now if absent.")]


class EventIn(BaseModel):
    user_id: UserId
    event_type: EventType  # type: ignore[valid-type]
    item_id: ItemId = None
    properties: Properties = None
    occurred_at: OccurredAt = None


@tool(title="Record event", role="writer", purpose="service", read_only=False)
async def record_event(
    scope: Scope,
    user_id: UserId,
    event_type: EventType,  # type: ignore[valid-type]
    item_id: ItemId = None,
    properties: Properties = None,
    occurred_at: OccurredAt = None,
) -> EventsRecorded:
    """Record one behavioural signal (view, purchase, rating, mood check-in, ...). Each event type is collected
    for purposes (schema://profile): this caller must act for one and see its data category, and the user consent
    to it (a purchase or return rests on the contract); otherwise nothing is stored and the error names the consent
    to ask for. Learning from it needs consent to personalization or profiling."""
    event = EventInput(user_id, event_type, item_id, properties, occurred_at)
    return await scope.app.events.record(scope.access, [event])


@tool(title="Record events", role="writer", purpose="service", read_only=False)
async def record_events(
    scope: Scope,
    events: Annotated[list[EventIn], Field(description=f"The events; at most {MAX_BATCH}.")],
) -> EventsRecorded:
    """Record a batch of behavioural signals, all or none: one invalid event, or one without a basis (see
    record_event and schema://profile), refuses the whole batch and nothing is stored."""
    batch = [EventInput(e.user_id, e.event_type, e.item_id, e.properties, e.occurred_at) for e in events]
    return await scope.app.events.record(scope.access, batch)
