"""Argument types shared by tools, resources and prompts; the signature is the schema."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ..domain.events import EVENT_TYPES
from ..domain.purposes import PURPOSE_NAMES

UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$",
                              description="The brand's id for the user.")]
PurposeName = Literal[PURPOSE_NAMES]  # type: ignore[valid-type]
Purpose = Annotated[PurposeName, Field(description="Why the data is needed; see policy://purposes.")]
EventType = Literal[tuple(EVENT_TYPES)]  # type: ignore[valid-type]
Timestamp = Annotated[str, Field(max_length=64, description="ISO 8601 with a time zone, e.g. 2026-11-26T09:30:00Z.")]
