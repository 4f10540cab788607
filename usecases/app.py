"""The use cases, built once by the server, and the scope a handler runs in."""

from __future__ import annotations

from dataclasses import dataclass

from ..privacy.gate import Access
from .consent import Consents
from .discovery import Discovery
from .events import Events
from .item_model import SharedModel
from .profiles import Profiles
from .requests import Requests
from .retention import Retention
from .rights import Rights
from .runs import LearningRuns
from .vectors import IndexUpkeep


@dataclass(frozen=True, slots=True)
class UseCases:
    profiles: Profiles
    events: Events
    consents: Consents
    discovery: Discovery
    learning: LearningRuns  # batch learning, relearning, the periodic task
    model: SharedModel  # the shared item model: fit, load
    upkeep: IndexUpkeep  # vectors and the similarity index: refresh, rebuild
    requests: Requests  # data subject requests and their lifecycle
    rights: Rights  # access and erasure over every holder of personal data
    retention: Retention  # the purge of behavioural data past retention_days, and its daily task


@dataclass(frozen=True, slots=True)
class Scope:
    """What a handler gets: the use cases and the access the gate established for this call."""

    app: UseCases
    access: Access
