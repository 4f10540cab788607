"""The catalog learning and recommendations work from: read once, read again when an unknown item turns up."""

from __future__ import annotations

from collections.abc import Iterable

from ..domain.ports import Repositories, Store
from ..learning.catalog import Catalog


class CatalogCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._catalog: Catalog | None = None

    async def get(self, repo: Repositories | None = None) -> Catalog:
        """The catalog. Inside a transaction pass its ``repo``: SQLite runs one transaction at a time."""
        if self._catalog is None:
            if repo is not None:
                self._catalog = Catalog.build(await repo.all_items())
            else:
                async with self.store.read() as own:
                    self._catalog = Catalog.build(await own.all_items())
        return self._catalog

    async def covering(self, item_ids: Iterable[str | None], repo: Repositories | None = None) -> Catalog:
        """The catalog, read again first if it lacks one of these items (added since it was read)."""
        catalog = await self.get(repo)
        if not catalog.covers(item_ids):
            self.invalidate()
            catalog = await self.get(repo)
        return catalog

    def invalidate(self) -> None:
        self._catalog = None
