"""Preference learning and its upkeep: apply signals, keep vectors and the similarity index current, fit the
shared model. Only users who consent to profiling are indexed or used to fit the shared model.

Signals are applied within the call that records them (``update_frequency: realtime``) or queued and applied by
``learn()`` (``batch``); weights are order-independent sums, so both end in the same state.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio.to_thread
import numpy as np

from ..domain.catalog import Item
from ..domain.events import Event
from ..domain.ports import Clock, Embedder, Repositories, Store, VectorIndex
from ..domain.preferences import Preference, StoredVector
from ..domain.profiles import winning
from ..learning import recommender
from ..learning.preferences import (
    EXPLICIT_WEIGHT,
    effective,
    fold,
    is_item,
    reference_time,
    signals_for,
    tokens_for_statement,
)
from ..learning.vectors import user_vector

log = logging.getLogger("mnky_profiles.learning")

PROFILING = "profiling"
PAGE = 2000


@dataclass
class Catalog:
    """The item catalog as learning sees it: tokens per item, a value -> tokens vocabulary, the item space."""

    items: dict[str, Item]
    item_tokens: dict[str, list[str]]
    vocabulary: dict[str, list[str]]
    space: recommender.ItemSpace

    @classmethod
    def build(cls, items: Iterable[Item]) -> Catalog:
        by_id = {i.item_id: i for i in items}
        item_tokens = {i.item_id: i.tokens() for i in by_id.values()}
        vocabulary: dict[str, list[str]] = defaultdict(list)
        for tokens in item_tokens.values():
            for token in tokens:
                value = token.split(":", 1)[1]
                if token not in vocabulary[value]:
                    vocabulary[value].append(token)
        space = recommender.ItemSpace.build((i.item_id, i.kind, item_tokens[i.item_id]) for i in by_id.values())
        return cls(by_id, item_tokens, dict(vocabulary), space)


@dataclass(frozen=True, slots=True)
class VectorState:
    vector: np.ndarray
    as_of: datetime


class Learner:
    def __init__(self, store: Store, embedder: Embedder, index: VectorIndex, clock: Clock, *,
                 half_life_days: float, realtime: bool, model_path: Path | None,
                 blend: recommender.Blend | None = None, l2: float = recommender.DEFAULT_L2) -> None:
        self.store = store
        self.embedder = embedder
        self.index = index
        self.clock = clock
        self.half_life_days = half_life_days
        self.realtime = realtime
        self.model_path = model_path
        self.blend = blend or recommender.Blend()
        self.l2 = l2
        self.model: recommender.ItemModel | None = None
        self._catalog: Catalog | None = None
        self._embeddings: dict[str, np.ndarray] = {}
        self._fit_lock = asyncio.Lock()

    # -- catalog and embeddings ------------------------------------------------------------------------------
    async def catalog(self, repo: Repositories | None = None) -> Catalog:
        """The catalog, read once. Inside a transaction pass its ``repo``: SQLite runs one at a time."""
        if self._catalog is None:
            if repo is not None:
                self._catalog = Catalog.build(await repo.all_items())
            else:
                async with self.store.read() as own:
                    self._catalog = Catalog.build(await own.all_items())
        return self._catalog

    def invalidate_catalog(self) -> None:
        self._catalog = None

    async def embeddings(self, tokens: Iterable[str]) -> dict[str, np.ndarray]:
        missing = sorted({t for t in tokens if t not in self._embeddings})
        if missing:
            for token, vector in zip(missing, await self.embedder.embed(missing), strict=True):
                self._embeddings[token] = np.asarray(vector, dtype=np.float64)
        return self._embeddings

    # -- the write path (inside the caller's transaction) -------------------------------------------------
    async def on_events(self, repo: Repositories, ids: Sequence[int], events: Sequence[Event]) -> str:
        if not self.realtime:
            await repo.queue_events(ids)
            return "queued"
        await self._apply(repo, list(zip(ids, events, strict=True)))
        return "applied"

    async def _apply(self, repo: Repositories, pairs: Sequence[tuple[int, Event]]) -> set[str]:
        catalog = await self.catalog(repo)
        if any(e.item_id and e.item_id not in catalog.items for _, e in pairs):
            self.invalidate_catalog()  # an item added since the catalog was read
            catalog = await self.catalog(repo)
        by_user: dict[str, list[tuple[int, Event]]] = defaultdict(list)
        for event_id, event in pairs:
            by_user[event.user_id].append((event_id, event))
        for user_id, user_events in by_user.items():
            signals = [s for event_id, e in user_events for s in signals_for(
                event_id, e.event_type, e.item_id, e.properties, e.occurred_at, catalog.item_tokens,
                catalog.vocabulary)]
            if not signals:
                continue
            touched = [s.token for s in signals]
            current = {p.token: p for p in await repo.preferences(user_id, touched) if p.source == "implicit"}
            changed = fold(current, signals, self.half_life_days)
            await repo.put_preferences(user_id, list(changed.values()))
        return set(by_user)

    async def on_statement(self, repo: Repositories, user_id: str, at: datetime) -> None:
        """Make the explicit preferences follow the user's stated likes and dislikes."""
        catalog = await self.catalog(repo)
        stated = winning([a for a in await repo.attributes(user_id) if a.source == "explicit"])
        wanted: dict[str, float] = {}
        for field, sign in (("likes", EXPLICIT_WEIGHT), ("dislikes", -EXPLICIT_WEIGHT)):
            attribute = stated.get(field)
            for text in (attribute.value if attribute and isinstance(attribute.value, list) else []):
                for token in tokens_for_statement(text, catalog.vocabulary):
                    wanted[token] = sign
        existing = {p.token: p for p in await repo.preferences(user_id)
                    if p.source == "explicit"}
        await repo.delete_preferences(user_id, "explicit", [t for t in existing if t not in wanted])
        await repo.put_preferences(user_id, [
            Preference(t, "explicit", w, at, 1, (), at) for t, w in wanted.items()
            if t not in existing or existing[t].weight != w])

    # -- after commit: vectors and the index ---------------------------------------------------------------
    async def vector_of(self, preferences: Sequence[Preference]) -> VectorState | None:
        """The vector of the attribute-token weights, as of the newest of them."""
        attributes = [p for p in preferences if not is_item(p.token)]
        as_of = reference_time(attributes)
        if as_of is None:
            return None
        weights = effective(attributes, as_of, self.half_life_days)
        vector = user_vector(weights, await self.embeddings(weights), self.embedder.dim)
        return None if vector is None else VectorState(vector, as_of)

    async def refresh(self, user_ids: Iterable[str]) -> None:
        """Recompute stored vectors; index the users who consent to profiling, drop the others at once."""
        users = sorted(set(user_ids))
        if not users:
            return
        now = self.clock.now()
        async with self.store.read() as repo:
            prefs = await repo.attribute_weights_of(users)
            consenting = set(await repo.consenting(PROFILING, now, users))
        states = {u: await self.vector_of(prefs[u]) for u in users}
        async with self.store.write() as repo:
            for user_id, state in states.items():
                if state is None:
                    await repo.delete_user_vector(user_id)
                else:
                    await repo.put_user_vector(_stored(user_id, self.embedder.name, state))
        indexed = [u for u in users if u in consenting and states[u] is not None]
        if indexed:
            await self.index.upsert(indexed, [states[u].vector.tolist() for u in indexed])  # type: ignore[union-attr]
        dropped = [u for u in users if u not in indexed]
        if dropped:
            await self.index.delete(dropped)

    async def on_consent(self, user_id: str, purpose: str) -> None:
        if purpose == PROFILING:
            await self.refresh([user_id])

    # -- batch ------------------------------------------------------------------------------------------------
    async def learn(self) -> int:
        """Apply every queued signal; returns how many events were applied."""
        applied = 0
        while True:
            async with self.store.write() as repo:
                batch = await repo.pending_events(PAGE)
                if not batch:
                    break
                users = await self._apply(repo, batch)
                await repo.dequeue_events([i for i, _ in batch])
            await self.refresh(users)
            applied += len(batch)
        return applied

    async def relearn(self) -> int:
        """Recompute every implicit weight from the stored events, then refresh vectors and the index.

        For data that arrived around the learning path (a bulk load) or after the event weights changed; any
        queued events are applied on the way. Returns how many users were processed.
        """
        total, after = 0, ""
        while True:
            async with self.store.read() as repo:
                users = await repo.profile_ids(after, PAGE)
            if not users:
                return total
            async with self.store.write() as repo:
                events = await repo.events_of(users)
                await repo.clear_preferences(users, "implicit")
                await self._apply(repo, events)
                await repo.dequeue_events([i for i, _ in events])
            await self.refresh(users)
            total += len(users)
            after = users[-1]

    async def consenting_pages(self, now: datetime) -> AsyncIterator[list[str]]:
        """Every user who consents to profiling now, a page at a time (pages of profiles, so the walk is linear)."""
        after = ""
        while True:
            async with self.store.read() as repo:
                page = await repo.profile_ids(after, PAGE)
                users = await repo.consenting(PROFILING, now, page) if page else []
            if not page:
                return
            if users:
                yield users
            after = page[-1]

    async def rebuild_index(self) -> int:
        """Rebuild the similarity index from the stored vectors of the users who consent to profiling."""
        ids: list[str] = []
        rows: list[np.ndarray] = []
        async for users in self.consenting_pages(self.clock.now()):
            async with self.store.read() as repo:
                stored = await repo.user_vectors(users)
            for s in stored:
                if s.model == self.embedder.name:  # vectors of another embedder are refreshed on the next signal
                    ids.append(s.user_id)
                    rows.append(np.frombuffer(s.data, dtype="<f4"))
        matrix = np.vstack(rows) if rows else np.zeros((0, self.embedder.dim), dtype=np.float32)
        await self.index.rebuild(ids, matrix)
        return len(ids)

    # -- the shared model ---------------------------------------------------------------------------------
    async def fit(self) -> recommender.ItemModel:
        """Refit the item model on the histories of the users who consent to profiling now."""
        async with self._fit_lock:
            catalog = await self.catalog()
            now = self.clock.now()
            histories: list[dict[str, float]] = []
            async for users in self.consenting_pages(now):
                async with self.store.read() as repo:
                    prefs = await repo.preferences_of(users, evidence=False)
                histories += [history(p, now, self.half_life_days) for p in prefs.values()]
            # The fit is CPU-bound numpy: run it off the event loop so the server keeps answering.
            model = await anyio.to_thread.run_sync(recommender.fit, catalog.space.item_ids, histories, self.l2)
            self.model = model
            if self.model_path is not None:
                save_model(self.model_path, model, now)
            log.info("fitted the item model on %d users", model.users)
            return model

    async def maintain(self, every_minutes: float) -> None:
        """The periodic task of a running server: apply queued signals (batch) and refit the shared model.

        Without a fitted model it fits at once; otherwise it first waits one interval.
        """
        wait = self.model is not None
        while True:
            if wait:
                await asyncio.sleep(every_minutes * 60)
            wait = True
            try:
                if not self.realtime:
                    await self.learn()
                await self.fit()
            except Exception:
                log.exception("learning maintenance failed; retrying at the next interval")

    def load_model(self) -> bool:
        if self.model_path is None or not self.model_path.exists():
            return False
        self.model = load_model(self.model_path)
        return True


def history(preferences: Iterable[Preference], when: datetime, half_life_days: float) -> dict[str, float]:
    """Item -> decayed interaction strength, from the ``item:`` tokens."""
    weights = effective((p for p in preferences if is_item(p.token)), when, half_life_days)
    return {t.split(":", 1)[1]: w for t, w in weights.items() if w > 0}


def _stored(user_id: str, model: str, state: VectorState) -> StoredVector:
    return StoredVector(user_id, model, state.vector.astype("<f4").tobytes(), state.as_of)


def save_model(path: Path, model: recommender.ItemModel, fitted_at: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, item_ids=np.array(model.item_ids), weights=model.weights, popularity=model.popularity,
             users=np.array(model.users), fitted_at=np.array(fitted_at.isoformat()))
    tmp.replace(path)


def load_model(path: Path) -> recommender.ItemModel:
    with np.load(path, allow_pickle=False) as data:
        return recommender.ItemModel([str(i) for i in data["item_ids"]], data["weights"], data["popularity"],
                                     int(data["users"]))
