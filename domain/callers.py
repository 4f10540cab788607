"""Callers: the agents that use the server, with what they may do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import categories as cat

Role = Literal["reader", "writer", "privacy_officer"]


@dataclass(frozen=True, slots=True)
class Caller:
    name: str
    purposes: frozenset[str]
    categories: frozenset[str]
    roles: frozenset[str]
    identifiers: bool = False  # may see direct identifiers when anonymization is on
    subject: str | None = None  # bound to one data subject: the only user it can reach
    default_purpose: str = "service"  # the purpose of resource reads, which carry no purpose argument

    def may_see(self, category: str) -> bool:
        return category in cat.NON_PERSONAL or cat.covered_by_any(self.categories, category)

    def may_see_some_of(self, category: str) -> bool:
        """It may see ``category`` or some category below it (a grant of user.preference.learned, some of
        user.preference)."""
        return self.may_see(category) or any(cat.covers(category, mine) for mine in self.categories)
