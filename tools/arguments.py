"""Argument types shared by tools, resources and prompts; the signature is the schema. A user id is
``privacy.subjects.UserId``: the gate finds data subjects by that type."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..domain.events import EVENT_TYPES
from ..domain.limits import MAX_RESULTS, MAX_TIMESTAMP
from ..domain.purposes import PURPOSE_NAMES

PurposeName = Literal[PURPOSE_NAMES]  # type: ignore[valid-type]
Purpose = Annotated[PurposeName, Field(description="Why the data is needed; see policy://purposes.")]
EventType = Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]
Timestamp = Annotated[str, Field(max_length=MAX_TIMESTAMP,
                                 description="ISO 8601 with a time zone, e.g. 2026-11-26T09:30:00Z.")]
Limit = Annotated[int, Field(ge=1, le=MAX_RESULTS, description=f"How many to return (1 to {MAX_RESULTS}).")]
