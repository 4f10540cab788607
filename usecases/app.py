"""The use cases, built once by the server, and the scope a handler runs in."""

from __future__ import annotations

from dataclasses import dataclass

from ..privacy.gate import Access
from .consent import Consents
from .discovery import Discovery
from .events import Events
from .learning import Learner
from .profiles import Profiles


@dataclass(frozen=True, slots=True)
class UseCases:
    profiles: Profiles
    events: Events
    consents: Consents
    learner: Learner
    discovery: Discovery


@dataclass(frozen=True, slots=True)
class Scope:
    """What a handler gets: the use cases and the access the gate established for this call."""

    app: UseCases
    access: Access
