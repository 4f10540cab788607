"""Preference learning on the write path, inside the caller's transaction: signals into implicit weights,
statements into explicit ones.

Signals are applied within the call that records them (``update_frequency: realtime``) or queued and applied by a
batch run (``usecases/runs.py``); weights are order-independent sums, so both end in the same state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from ..domain.events import Event
from ..domain.ports import Repositories
from ..domain.preferences import Preference
from ..learning.preferences import event_signals, fold, stated_weights
from .catalog import CatalogCache


class PreferenceLearner:
    def __init__(self, catalog: CatalogCache, *, half_life_days: float, realtime: bool) -> None:
        self.catalog = catalog
        self.half_life_days = half_life_days
        self.realtime = realtime

    async def on_events(self, repo: Repositories, ids: Sequence[int], events: Sequence[Event]
                        ) -> Literal["applied", "queued"]:
        if not self.realtime:
            await repo.queue_events(ids)
            return "queued"
        await self.apply(repo, list(zip(ids, events, strict=True)))
        return "applied"

    async def apply(self, repo: Repositories, pairs: Sequence[tuple[int, Event]]) -> set[str]:
        """Fold these (event id, event) pairs into their users' implicit weights; the users they touched."""
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
        return set(by_user)

    async def on_statement(self, repo: Repositories, user_id: str, at: datetime) -> None:
        """Make the explicit preferences follow the user's stated likes and dislikes."""
        catalog = await self.catalog.get(repo)
        wanted = stated_weights(await repo.attributes(user_id), catalog.vocabulary)
        existing = {p.token: p for p in await repo.preferences(user_id) if p.source == "explicit"}
        await repo.delete_preferences(user_id, "explicit", [t for t in existing if t not in wanted])
        await repo.put_preferences(user_id, [Preference.stated(t, w, at) for t, w in wanted.items()
                                             if t not in existing or existing[t].weight != w])
