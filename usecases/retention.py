"""Retention: behavioural data (events, and the queued signals among them) that happened more than
``retention_days`` ago is deleted, with what was derived from it alone recomputed from what remains.

For each user who had such events, the implicit weights are rebuilt from the remaining events (as a relearn does),
then the stored vector and the similarity index entry follow (``IndexUpkeep.refresh``); once anything was purged,
the shared model is refitted, so no recommendation for anyone reflects the purged history. Stated preferences,
profile attributes and the consent ledger are not behavioural data and stay. A running server purges once a day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ..domain.ports import Clock, Store
from .item_model import SharedModel
from .learning import PreferenceLearner
from .population import PAGE
from .vectors import IndexUpkeep

log = logging.getLogger("mnky_profiles.retention")

DAY_SECONDS = 24 * 60 * 60
Progress = Callable[[int, int], None]  # (users done, users in all)


@dataclass
class RetentionReport:
    """What a purge removed (or, in a dry run, would remove), by table; and what it recomputed."""

    cutoff: datetime  # events that happened before this go
    dry_run: bool
    removed: dict[str, int] = field(default_factory=dict)  # "events", "pending_events"
    users: int = 0  # users whose implicit weights, vector and index entry are (or would be) recomputed
    model_refitted: bool = False

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        lines = [f"retention cutoff {self.cutoff.isoformat()} (events that happened before it)"]
        lines += [f"  database.{table}: {verb} {n}" for table, n in self.removed.items()]
        again = "would be recomputed" if self.dry_run else "recomputed"
        lines.append(f"  implicit preferences, user vectors and similarity index: {self.users} users {again}")
        if self.dry_run:
            lines.append(f"  shared model: {'would be refitted' if self.users else 'unchanged'}")
        else:
            lines.append(f"  shared model: {'refitted' if self.model_refitted else 'unchanged'}")
        return lines


class Retention:
    def __init__(self, store: Store, clock: Clock, retention_days: int, learner: PreferenceLearner,
                 upkeep: IndexUpkeep, model: SharedModel) -> None:
        self.store = store
        self.clock = clock
        self.retention_days = retention_days
        self.learner = learner
        self.upkeep = upkeep
        self.model = model

    def cutoff(self) -> datetime:
        return self.clock.now() - timedelta(days=self.retention_days)

    async def plan(self) -> RetentionReport:
        """What a purge now would remove, changing nothing."""
        report = RetentionReport(self.cutoff(), dry_run=True)
        async with self.store.read() as repo:
            report.removed = await repo.count_events_before(report.cutoff)
        report.users = await self._count_users(report.cutoff)
        return report

    async def purge(self, progress: Progress | None = None) -> RetentionReport:
        """Delete what is past retention and recompute what was derived from it."""
        report = RetentionReport(self.cutoff(), dry_run=False, removed={"events": 0, "pending_events": 0})
        total = await self._count_users(report.cutoff) if progress is not None else 0
        after = ""
        while True:
            async with self.store.read() as repo:
                users = await repo.users_with_events_before(report.cutoff, after, PAGE)
            if not users:
                break
            async with self.store.write() as repo:  # one transaction per page: deleted and relearned together
                for table, n in (await repo.delete_events_before(users, report.cutoff)).items():
                    report.removed[table] += n
                await self.learner.relearn(repo, users)  # from what remains
            await self.upkeep.refresh(users)
            report.users += len(users)
            after = users[-1]
            if progress is not None:
                progress(report.users, max(total, report.users))
        if report.users:
            await self.model.fit()
            report.model_refitted = True
        log.info("retention: removed %s; recomputed %d users", report.removed, report.users)
        return report

    async def _count_users(self, cutoff: datetime) -> int:
        count, after = 0, ""
        while True:
            async with self.store.read() as repo:
                users = await repo.users_with_events_before(cutoff, after, PAGE)
            if not users:
                return count
            count += len(users)
            after = users[-1]

    async def maintain(self, every_seconds: float = DAY_SECONDS) -> None:
        """The daily task of a running server: purge now, then once per interval."""
        while True:
            try:
                await self.purge()
            except Exception:
                log.exception("retention purge failed; retrying at the next interval")
            await asyncio.sleep(every_seconds)
