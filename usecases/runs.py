"""Learning over many users at once: the queued signals of ``update_frequency: batch``, relearning everything from
the stored events, and the periodic task of a running server."""

from __future__ import annotations

import asyncio
import logging

from ..domain.ports import Store
from .item_model import SharedModel
from .learning import PreferenceLearner
from .population import PAGE
from .vectors import IndexUpkeep

log = logging.getLogger("mnky_profiles.learning")


class LearningRuns:
    def __init__(self, store: Store, learner: PreferenceLearner, upkeep: IndexUpkeep, model: SharedModel) -> None:
        self.store = store
        self.learner = learner
        self.upkeep = upkeep
        self.model = model

    async def learn(self) -> int:
        """Apply every queued signal; returns how many events were applied. A signal of a user who no longer
        consents to learning is taken off the queue unlearned (a relearn picks it up if they consent again)."""
        applied = 0
        while True:
            async with self.store.write() as repo:
                batch = await repo.pending_events(PAGE)
                if not batch:
                    break
                learned = await self.learner.apply(repo, batch)
                await repo.dequeue_events([i for i, _ in batch])
            await self.upkeep.refresh({e.user_id for _, e in learned})
            applied += len(learned)
        return applied

    async def relearn(self) -> int:
        """Recompute every implicit weight from the stored events, then refresh vectors and the index.

        For data that arrived around the learning path (a bulk load) or after the event weights changed; any
        queued events are applied on the way. Only the users who consent to learning now keep implicit weights.
        Returns how many users were processed.
        """
        total, after = 0, ""
        while True:
            async with self.store.read() as repo:
                users = await repo.profile_ids(after, PAGE)
            if not users:
                return total
            async with self.store.write() as repo:
                await self.learner.relearn(repo, users)
            await self.upkeep.refresh(users)
            total += len(users)
            after = users[-1]

    async def maintain(self, every_minutes: float) -> None:
        """The periodic task of a running server: apply queued signals (batch) and refit the shared model.

        Without a fitted model it fits at once; otherwise it first waits one interval.
        """
        wait = self.model.current is not None
        while True:
            if wait:
                await asyncio.sleep(every_minutes * 60)
            wait = True
            try:
                if not self.learner.realtime:
                    await self.learn()
                await self.model.fit()
            except Exception:
                log.exception("learning maintenance failed; retrying at the next interval")
