"""User vectors and the similarity index: each vector computed from stored weights, and only users who consent
to profiling in the index, from the call that changes either."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ..domain.ports import Clock, Embedder, Store, VectorIndex
from ..domain.preferences import Preference, StoredVector
from ..learning.vectors import decode, encode, user_vector, vector_weights
from .population import consenting_pages

PROFILING = "profiling"


@dataclass(frozen=True, slots=True)
class VectorState:
    vector: np.ndarray
    as_of: datetime


class UserVectors:
    """A user's vector from their weights, over the embedder's token vectors (each token embedded once)."""

    def __init__(self, embedder: Embedder, half_life_days: float) -> None:
        self.embedder = embedder
        self.half_life_days = half_life_days
        self._embeddings: dict[str, np.ndarray] = {}

    async def of(self, preferences: Sequence[Preference]) -> VectorState | None:
        """The vector of the attribute-token weights, as of the newest of them; None for a user with none."""
        made = vector_weights(preferences, self.half_life_days)
        if made is None:
            return None
        weights, as_of = made
        vector = user_vector(weights, await self.embeddings(weights), self.embedder.dim)
        return None if vector is None else VectorState(vector, as_of)

    async def embeddings(self, tokens: Iterable[str]) -> dict[str, np.ndarray]:
        missing = sorted({t for t in tokens if t not in self._embeddings})
        if missing:
            for token, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._embeddings[token] = np.asarray(vector, dtype=np.float64)
        return self._embeddings

    def forget(self) -> None:
        """Drop the token vectors kept in memory (they are fetched again on the next use)."""
        self._embeddings.clear()


class IndexUpkeep:
    """Keeps the stored vectors and the similarity index current."""

    def __init__(self, store: Store, vectors: UserVectors, index: VectorIndex, clock: Clock) -> None:
        self.store = store
        self.vectors = vectors
        self.index = index
        self.clock = clock

    async def refresh(self, user_ids: Iterable[str]) -> None:
        """Recompute stored vectors; index the users who consent to profiling, drop the others at once."""
        users = sorted(set(user_ids))
        if not users:
            return
        async with self.store.read() as repo:
            prefs = await repo.attribute_weights_of(users)
            consenting = set(await repo.consenting(PROFILING, self.clock.now(), users))
        states = {u: await self.vectors.of(prefs[u]) for u in users}
        model = self.vectors.embedder.name
        async with self.store.write() as repo:
            for user_id, state in states.items():
                if state is None:
                    await repo.delete_user_vector(user_id)
                else:
                    await repo.put_user_vector(StoredVector(user_id, model, encode(state.vector), state.as_of))
        indexed = {u: state for u, state in states.items() if u in consenting and state is not None}
        if indexed:
            await self.index.upsert(list(indexed), [state.vector.tolist() for state in indexed.values()])
        dropped = [u for u in users if u not in indexed]
        if dropped:
            await self.index.delete(dropped)

    async def follow_consent(self, user_id: str, purpose: str) -> None:
        """A recorded choice about profiling takes the user into the index or out of it now."""
        if purpose == PROFILING:
            await self.refresh([user_id])

    async def rebuild(self) -> int:
        """Rebuild the index from the stored vectors of the users who consent to profiling; how many it holds."""
        ids: list[str] = []
        rows: list[np.ndarray] = []
        model = self.vectors.embedder.name
        async for users in consenting_pages(self.store, PROFILING, self.clock.now()):
            async with self.store.read() as repo:
                stored = await repo.user_vectors(users)
            for s in stored:
                if s.model == model:  # vectors of another embedder are refreshed on the next signal
                    ids.append(s.user_id)
                    rows.append(decode(s.data))
        matrix = np.vstack(rows) if rows else np.zeros((0, self.vectors.embedder.dim), dtype=np.float32)
        await self.index.rebuild(ids, matrix)
        return len(ids)
