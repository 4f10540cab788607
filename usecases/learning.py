"""Preference learning on the write path, inside the caller's transaction: signals into implicit weights,
statements into explicit ones.

Signals are applied within the call that records them (``update_frequency: realtime``) or queued and applied by a
batch run (``usecases/runs.py``); weights are order-independent sums, so both end in the same state. Every path
(realtime, a batch run, a relearn) keeps only the signals of users who consent to ``LEARNING`` at that moment
(``learnable``): a signal recorded without that consent is stored on its own basis but not learned from, unless a
relearn finds the consent granted since.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from ..domain.events import Event
from ..domain.ports import Clock, Repositories
from ..domain.preferences import Preference
from ..learning.preferences import LEARNING, event_signals, fold, stated_weights
from .catalog import CatalogCache


class PreferenceLearner:
    def __init__(self, catalog: CatalogCache, clock: Clock, *, half_life_days: float, realtime: bool) -> None:
        self.catalog = catalog
        self.clock = clock
        self.half_life_days = half_life_days
        self.realtime = realtime

    async def on_events(self, repo: Repositories, ids: Sequence[int], events: Sequence[Event]
                        ) -> Literal["applied", "queued", "none"]:
        """Learn from these events now (realtime) or queue them (batch); "none" when no user of theirs consents to
        learning now, so nothing is queued either."""
        pairs = await self.learnable(repo, list(zip(ids, events, strict=True)))
        if not pairs:
            return "none"
        if not self.realtime:
            await repo.queue_events([i for i, _ in pairs])
            return "queued"
        await self._fold(repo, pairs)
        return "applied"

    async def learnable(self, repo: Repositories, pairs: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
        """The pairs whose users consent now to a purpose preferences are learned for."""
        users = sorted({e.user_id for _, e in pairs})
        now = self.clock.now()
        consenting: set[str] = set()
        for purpose in LEARNING.purposes:
            consenting.update(await repo.consenting(purpose, now, users))
        return [(i, e) for i, e in pairs if e.user_id in consenting]

    async def relearn(self, repo: Repositories, user_ids: Sequence[str]) -> None:
        """Recompute the users' implicit weights from their stored events (queued ones applied on the way)."""
        events = await repo.events_of(user_ids)
        await repo.clear_preferences(user_ids, "implicit")
        await self.apply(repo, events)
        await repo.dequeue_events([i for i, _ in events])

    async def apply(self, repo: Repositories, pairs: Sequence[tuple[int, Event]]) -> list[tuple[int, Event]]:
        """Fold these (event id, event) pairs into their users' implicit weights, leaving out the users who do not
        consent to learning now; the pairs it learned from."""
        learned = await self.learnable(repo, pairs)
        await self._fold(repo, learned)
        return learned

    async def _fold(self, repo: Repositories, pairs: Sequence[tuple[int, Event]]) -> None:
        catalog = await self.catalog.covering((e.item_id for _, e in pairs), repo)
        by_user: dict[str, list[tuple[int, Event]]] = defaultdict(list)
        for event_id, event in pairs:
            by_user[event.user_id].append((event_id, event))
        for user_id, user_events in by_user.items():
            signals = event_signals(user_events, catalog)
            if not signals:
                continue
            touched = [s.token for s in signals]
            current = {p.token: p for p in await repo.preferences(user_id, touched) if p.source == "implicit"}
            changed = fold(current, signals, self.half_life_days)
            await repo.put_preferences(user_id, list(changed.values()))

    async def on_statement(self, repo: Repositories, user_id: str, at: datetime) -> None:
        """Make the explicit preferences follow the user's stated likes and dislikes."""
        catalog = await self.catalog.get(repo)
        wanted = stated_weights(await repo.attributes(user_id), catalog.vocabulary)
        existing = {p.token: p for p in await repo.preferences(user_id) if p.source == "explicit"}
        await repo.delete_preferences(user_id, "explicit", [t for t in existing if t not in wanted])
        await repo.put_preferences(user_id, [Preference.stated(t, w, at) for t, w in wanted.items()
                                             if t not in existing or existing[t].weight != w])
