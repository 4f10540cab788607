"""The shared item-to-item model: fitted on the histories of the users who consent to profiling now, kept
between runs in a ``ModelStore``, refitted by the periodic task (``usecases/runs.py``)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from typing import Any

import anyio.to_thread
import numpy as np

from ..domain.ports import Clock, ModelStore, Store
from ..learning import recommender
from ..learning.preferences import item_history
from .catalog import CatalogCache
from .population import consenting_pages
from .vectors import PROFILING

log = logging.getLogger("mnky_profiles.learning")


class SharedModel:
    def __init__(self, store: Store, catalog: CatalogCache, clock: Clock, *, half_life_days: float,
                 files: ModelStore | None = None, name: str = "items", l2: float = recommender.DEFAULT_L2) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.half_life_days = half_life_days
        self.files = files
        self.name = name
        self.l2 = l2
        self.current: recommender.ItemModel | None = None
        self._trained_on: np.ndarray | None = None  # digests of the users the current model learned from
        self._fit_lock = asyncio.Lock()

    async def fit(self) -> recommender.ItemModel:
        """Refit on the histories of the users who consent to profiling now, and keep the result."""
        async with self._fit_lock:
            catalog = await self.catalog.get()
            now = self.clock.now()
            histories: list[dict[str, float]] = []
            trained_on: list[str] = []
            async for users in consenting_pages(self.store, PROFILING, now):
                async with self.store.read() as repo:
                    prefs = await repo.preferences_of(users, evidence=False)
                for user_id, user_prefs in prefs.items():
                    history = item_history(user_prefs, now, self.half_life_days)
                    if history:
                        histories.append(history)
                        trained_on.append(user_id)
            # The fit is CPU-bound numpy: run it off the event loop so the server keeps answering.
            model = await anyio.to_thread.run_sync(recommender.fit, catalog.space.item_ids, histories, self.l2)
            self.current, self._trained_on = model, _digests(trained_on)
            if self.files is not None:
                self.files.save(self.name, model.arrays())
            log.info("fitted the item model on %d users", model.users)
            return model

    def load(self) -> bool:
        """Take the model kept from an earlier run, if there is one."""
        arrays = self.files.load(self.name) if self.files is not None else None
        if arrays is None:
            return False
        self.current = recommender.ItemModel.from_arrays(arrays)
        self._trained_on = None  # not kept with the file: until the next fit, it may have learned from anyone
        return True

    # -- the personal-data port: a subject's history shapes the shared model, never one record of it -------------
    holder = "shared_model"

    async def held(self, user_id: str) -> dict[str, int]:
        if self.current is None:
            return {}
        known = self._trained_on
        learned = known is None or bool(np.isin(_digests([user_id]), known)[0])
        return {"training_history": 1} if learned else {}

    async def export(self, user_id: str) -> dict[str, Any]:
        return {}  # weights over items and popularity: aggregates, nothing about one person to hand over

    async def erase(self, user_id: str) -> dict[str, int]:
        """Refit without the subject (erase their data everywhere else first): no later recommendation, for
        anyone, reflects their history."""
        held = await self.held(user_id)
        if held:
            await self.fit()
        return held


def _digests(user_ids: Iterable[str]) -> np.ndarray:
    """Eight-byte digests, sorted: who the model learned from, in a tenth of the memory of the ids."""
    return np.sort(np.fromiter((int.from_bytes(hashlib.blake2b(u.encode("utf-8", "surrogatepass"),
                                                                digest_size=8).digest(), "little")
                                for u in user_ids), dtype=np.uint64))
