"""The shared item-to-item model: fitted on the histories of the users who consent to profiling now, kept
between runs in a ``ModelStore``, refitted by the periodic task (``usecases/runs.py``)."""

from __future__ import annotations

import asyncio
import logging

import anyio.to_thread

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
        self._fit_lock = asyncio.Lock()

    async def fit(self) -> recommender.ItemModel:
        """Refit on the histories of the users who consent to profiling now, and keep the result."""
        async with self._fit_lock:
            catalog = await self.catalog.get()
            now = self.clock.now()
            histories: list[dict[str, float]] = []
            async for users in consenting_pages(self.store, PROFILING, now):
                async with self.store.read() as repo:
                    prefs = await repo.preferences_of(users, evidence=False)
                histories += [item_history(p, now, self.half_life_days) for p in prefs.values()]
            # The fit is CPU-bound numpy: run it off the event loop so the server keeps answering.
            model = await anyio.to_thread.run_sync(recommender.fit, catalog.space.item_ids, histories, self.l2)
            self.current = model
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
        return True
