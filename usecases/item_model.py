"""The shared item-to-item model: fitted on the histories of the users who consent to profiling now, kept
between runs in a ``ModelStore``, refitted by the periodic task (``usecases/runs.py``). A user who withdraws is taken
out of it within the call that records the withdrawal (``forget``), so no recommendation or reason for anyone
reflects their history after it returns."""

from __future__ import annotations

import asyncio
import functools
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
                 files: ModelStore | None = None, name: str = "items", l2: float = recommender.DEFAULT_L2,
                 min_group: int = 1) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.half_life_days = half_life_days
        self.files = files
        self.name = name
        self.l2 = l2
        self.min_group = min_group
        self.current: recommender.ItemModel | None = None
        self._fit_lock = asyncio.Lock()
        self._change_lock = asyncio.Lock()  # one change of ``current`` at a time
        self._forgotten: set[int] | None = None  # digests forgotten while a fit runs, taken out of its result

    async def fit(self) -> recommender.ItemModel:
        """Refit on the histories of the users who consent to profiling now, and keep the result."""
        async with self._fit_lock:
            catalog = await self.catalog.get()
            now = self.clock.now()
            histories: list[dict[str, float]] = []
            trained_on: list[str] = []
            self._forgotten = set()
            async for users in consenting_pages(self.store, PROFILING, now):
                async with self.store.read() as repo:
                    prefs = await repo.preferences_of(users, evidence=False)
                for user_id, user_prefs in prefs.items():
                    history = item_history(user_prefs, now, self.half_life_days)
                    if history:
                        histories.append(history)
                        trained_on.append(user_id)
            # The fit is CPU-bound numpy: run it off the event loop so the server keeps answering.
            model = await anyio.to_thread.run_sync(functools.partial(
                recommender.fit, catalog.space.item_ids, histories, self.l2, owners=digests(trained_on),
                min_group=self.min_group))
            async with self._change_lock:
                forgotten, self._forgotten = self._forgotten, None
                for owner in forgotten:  # withdrawn after the fit read their history
                    model = await anyio.to_thread.run_sync(model.without, owner)
                await self._publish(model)
            log.info("fitted the item model on %d users", model.users)
            return model

    async def forget(self, user_id: str) -> bool:
        """Take the user out of the current model (and of a fit under way); True when it had learned from them."""
        owner = int(digests([user_id])[0])
        async with self._change_lock:
            if self._forgotten is not None:
                self._forgotten.add(owner)
            model = self.current
            if model is None or not model.learned_from(owner):
                return False
            await self._publish(await anyio.to_thread.run_sync(model.without, owner))
            return True

    async def _publish(self, model: recommender.ItemModel) -> None:
        self.current = model
        if self.files is not None:  # kept too, so a restart does not bring the withdrawn history back
            await anyio.to_thread.run_sync(self.files.save, self.name, model.arrays())

    def load(self) -> bool:
        """Take the model kept from an earlier run, if there is one."""
        arrays = self.files.load(self.name) if self.files is not None else None
        if arrays is None:
            return False
        self.current = recommender.ItemModel.from_arrays(arrays, self.min_group)
        return self.current is not None

    # -- the personal-data port: a subject's history shapes the shared model, never one record of it -------------
    holder = "shared_model"

    async def held(self, user_id: str) -> dict[str, int]:
        model = self.current
        return {"training_history": 1} if model is not None and model.learned_from(int(digests([user_id])[0])) else {}

    async def export(self, user_id: str) -> dict[str, Any]:
        return {}  # weights over items and popularity: aggregates, nothing about one person to hand over

    async def erase(self, user_id: str) -> dict[str, int]:
        """Take the subject's history out: no later recommendation, for anyone, reflects it."""
        return {"training_history": 1} if await self.forget(user_id) else {}


def digests(user_ids: Iterable[str]) -> np.ndarray:
    """Eight-byte digests of user ids: who the model learned from, in a tenth of the memory of the ids."""
    return np.fromiter((int.from_bytes(hashlib.blake2b(u.encode("utf-8", "surrogatepass"), digest_size=8).digest(),
                                       "little") for u in user_ids), dtype=np.uint64)
