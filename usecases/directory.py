"""Which user ids a caller is offered as it types one: never a user it could not read.

A completion lists people, so it is held to what a read would show: a caller that may read no individual gets
nothing; a caller bound to one subject gets at most that subject; any other caller gets only users it could read for
one of its purposes now (``service`` needs no consent, so any profile; the others, users who consent to them).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..domain.callers import Caller
from ..domain.errors import NotPermitted
from ..domain.ports import Repositories, Store
from ..domain.purposes import Purpose
from ..privacy.gate import read_purposes

PAGE = 200  # ids read per query; filtering by consent may keep few of them, so reading goes on page by page


async def completable_user_ids(store: Store, caller: Caller, prefix: str, now: datetime, limit: int
                               ) -> tuple[list[str], bool]:
    """Up to ``limit`` ids starting with ``prefix`` that ``caller`` could read now, in order, and whether there
    are more. Refused when the caller may read no individual user."""
    purposes = read_purposes(caller)
    if not purposes:
        raise NotPermitted(f"Caller {caller.name!r} may not read individual users, so no user id is offered.")
    found: list[str] = []
    async with store.read() as repo:
        if caller.subject is not None:
            own = [caller.subject] if caller.subject.startswith(prefix) else []
            found = await _readable(repo, purposes, now, sorted(await repo.existing_profiles(own)))
            return found, False
        after: str | None = None
        while len(found) <= limit:  # one more than shown tells whether there are more
            page = await repo.user_ids(prefix, PAGE, after=after)
            found += await _readable(repo, purposes, now, page)
            if len(page) < PAGE:
                break
            after = page[-1]
    return found[:limit], len(found) > limit


async def _readable(repo: Repositories, purposes: Sequence[Purpose], now: datetime, ids: list[str]) -> list[str]:
    """Those of ``ids`` (existing profiles) that may be read for one of ``purposes`` now, in the order given."""
    if not ids or any(not p.needs_consent for p in purposes):
        return ids
    allowed: set[str] = set()
    for purpose in purposes:
        unsettled = [u for u in ids if u not in allowed]
        if unsettled:
            allowed.update(await repo.consenting(purpose.name, now, unsettled))
    return [u for u in ids if u in allowed]
