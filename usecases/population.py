"""Walking the population: every user who consents to a purpose now, a page at a time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from ..domain.ports import Store

PAGE = 2000


async def consenting_pages(store: Store, purpose: str, now: datetime) -> AsyncIterator[list[str]]:
    """Pages of profiles, each narrowed to the users who consent (so the walk stays linear in the population)."""
    after = ""
    while True:
        async with store.read() as repo:
            page = await repo.profile_ids(after, PAGE)
            users = await repo.consenting(purpose, now, page) if page else []
        if not page:
            return
        if users:
            yield users
        after = page[-1]
