"""The read side of learning: preferences, similar users and recommendations, each explainable."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..domain import categories as cat
from ..domain.errors import InvalidArgument, UnknownUser
from ..domain.limits import MAX_RESULTS
from ..domain.ports import Store, VectorIndex
from ..domain.preferences import Preference
from ..learning import recommender
from ..learning.catalog import Catalog
from ..learning.preferences import attribute_weights, is_item, item_history
from ..learning.vectors import shared_likes
from ..privacy.gate import Access
from ..privacy.lineage import Sourced, derive, sourced
from ..privacy.pseudonyms import Pseudonymizer
from .catalog import CatalogCache
from .item_model import SharedModel
from .vectors import PROFILING, UserVectors
from .views import (
    PreferenceItem,
    PreferencesView,
    Reason,
    RecommendationsView,
    RecommendedItem,
    SimilarUser,
    SimilarUsersView,
)

FACET_WORDS = {"note": "scent note", "family": "scent family", "type": "product type", "mood": "mood",
               "price_band": "price band", "collection": "collection", "topic": "topic"}


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_RESULTS:
        raise InvalidArgument(f"limit must be between 1 and {MAX_RESULTS}.")
    return limit


def describe(token: str) -> str:
    facet, _, value = token.partition(":")
    return f"{value} ({FACET_WORDS.get(facet, facet.replace('_', ' '))})"


# What find_similar_users shows of another person is coarse, so that it picks out one person less often: the exact
# (similarity, shared likes) pair is near-unique, and both are symmetric (B in A's list shows what A shows in B's).
SIMILARITY_STEP = 0.05
SHARED_SHOWN = 3


def shown_similarity(similarity: float) -> float:
    """The similarity as shown: rounded to the nearest ``SIMILARITY_STEP``."""
    return round(round(similarity / SIMILARITY_STEP) * SIMILARITY_STEP, 2)


class Discovery:
    def __init__(self, store: Store, catalog: CatalogCache, vectors: UserVectors, index: VectorIndex,
                 model: SharedModel, pseudonyms: Pseudonymizer, *, half_life_days: float,
                 blend: recommender.Blend | None = None) -> None:
        self.store = store
        self.catalog = catalog
        self.vectors = vectors
        self.index = index
        self.model = model
        self.pseudonyms = pseudonyms
        self.half_life_days = half_life_days
        self.blend = blend or recommender.Blend()

    async def preferences(self, access: Access, user_id: str, limit: int) -> PreferencesView:
        _limit(limit)
        async with self.store.read() as repo:
            prefs = await repo.preferences(user_id)
            if not prefs and not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
        now = access.now
        stated, learned = _preference_inputs(access, prefs)
        explicit = {p.token for p in stated.value}
        shown = [*stated.value, *(p for p in learned.value if p.token not in explicit)]
        weighted = sorted(((p.weight_at(now, self.half_life_days), p) for p in shown),
                          key=lambda wp: (-abs(wp[0]), wp[1].token))
        return PreferencesView(user_id=user_id, purpose=access.purpose.name, preferences=[
            derive(PreferenceItem, [stated if p.source == "explicit" else learned],
                   token=p.token, facet=p.facet, value=p.value, weight=round(w, 4),
                   confidence=round(p.confidence(), 3), source=p.source, evidence_count=p.evidence_count,
                   evidence_event_ids=list(p.evidence), last_update=p.updated_at)
            for w, p in weighted[:limit] if abs(w) >= 1e-4
        ])

    async def similar(self, access: Access, user_id: str, limit: int, min_similarity: float) -> SimilarUsersView:
        _limit(limit)
        if access.purpose.name != PROFILING:
            raise InvalidArgument("Finding similar users is profiling (GDPR Art. 22).",
                                  "Call find_similar_users with purpose='profiling'.")
        if not -1.0 <= min_similarity <= 1.0:
            raise InvalidArgument("min_similarity must be between -1 and 1.")
        async with self.store.read() as repo:
            prefs = (await repo.attribute_weights_of([user_id]))[user_id]
        state = await self.vectors.of(prefs)
        view = SimilarUsersView(user_id=user_id, min_similarity=min_similarity, neighbours=[])
        if state is None:
            return view.model_copy(update={"note": "Not enough signals about this user yet to compare."})
        hits = await self.index.query(state.vector.tolist(), limit * 2 + 5, exclude=[user_id])
        # On the similarity as shown: thresholds between the rounding steps would tell the exact value.
        hits = [(u, s) for u, s in hits if shown_similarity(s) >= min_similarity]
        # Shared likes cite this user's preferences: only those the caller may see and the purpose may use.
        stated, learned = _preference_inputs(access, prefs)
        mine = self._weights([*stated.value, *learned.value], access)
        said = {p.token for p in stated.value}
        async with self.store.read() as repo:
            # The index follows consent within the call that changes it; this re-check also covers expiry.
            consenting = set(await repo.consenting(PROFILING, access.now, [u for u, _ in hits]))
            # Shared likes are tokens both like, so only the neighbours' weights on what this user likes matter.
            theirs = await repo.attribute_weights_of([u for u, _ in hits if u in consenting][:limit],
                                                     tokens=[t for t, w in mine.items() if w > 0])
        stale = [u for u, _ in hits if u not in consenting]
        if stale:
            await self.index.delete(stale)
        kept = [(u, s) for u, s in hits if u in theirs][:limit]
        names = self.pseudonyms.for_response([u for u, _ in kept])
        inferred = sourced(None, cat.INFERRED + ".similar_users")
        neighbours = []
        for u, s in kept:
            shared = shared_likes(mine, self._weights(theirs[u], access), SHARED_SHOWN)
            cited = [i for i, hit in ((stated, any(t in said for t in shared)),
                                      (learned, any(t not in said for t in shared))) if hit]
            neighbours.append(derive(SimilarUser, [inferred, *cited], pseudonym=names[u],
                                     similarity=shown_similarity(s), shared_preferences=shared))
        note = None if neighbours else "No consenting user is similar enough; lower min_similarity to widen."
        return view.model_copy(update={"neighbours": neighbours, "note": note})

    def _weights(self, prefs: list[Preference], access: Access) -> dict[str, float]:
        return attribute_weights(prefs, access.now, self.half_life_days)

    async def recommend(self, access: Access, user_id: str, limit: int, kind: str | None,
                        repurchase: bool) -> RecommendationsView:
        _limit(limit)
        catalog = await self.catalog.get()
        async with self.store.read() as repo:
            prefs = await repo.preferences(user_id)
            if not prefs and not await repo.profile_exists(user_id):
                raise UnknownUser(user_id)
            acted = await repo.item_events(user_id, ["purchase", "return", "rating"])
        now = access.now
        # Every input is admitted by the gate first: what this caller and purpose may not use is not used at all.
        stated, learned = _preference_inputs(access, prefs)
        history = access.admit("item_history", sourced(item_history(prefs, now, self.half_life_days), cat.BEHAVIOR),
                               {})
        events = access.admit("purchases_returns_ratings", sourced(acted, cat.BEHAVIOR), [])
        shared = sourced(self.model.current, cat.AGGREGATE)
        weights = Sourced(self._weights([*stated.value, *learned.value], access),
                          stated.categories | learned.categories)
        space, model = catalog.space, shared.value
        bought = {item for item, event_type, _ in events.value if event_type == "purchase"}
        rejected = {item for item, event_type, props in events.value
                    if event_type == "return" or (event_type == "rating" and float(props.get("rating", 3)) <= 2)}
        excluded = rejected | (set() if repurchase else bought)
        allowed = np.array([(kind is None or space.kinds[i] == kind) and item not in excluded
                            for i, item in enumerate(space.item_ids)], dtype=bool)
        candidates = np.flatnonzero(allowed)
        cold = not history.value and not any(w > 0 for w in weights.value.values())
        if cold:
            scores = np.zeros(len(space.item_ids), dtype=np.float32)
            if model is not None:  # items added since the last fit have no popularity yet: they score 0
                rows = model.positions(space.item_ids)
                known = rows >= 0
                scores[known] = model.popularity[rows[known]]
            ranked_from: list[Sourced[Any]] = [shared, events]
        else:
            scores = recommender.score(space, model, history.value, weights.value, self.blend, repurchase)
            ranked_from = [shared, history, weights, events]
        ranked_from = [i for i in ranked_from if i.used and i.value]
        picked = recommender.rerank(space, scores, candidates, limit, 0.0 if cold else self.blend.diversity)
        reasons = Reasons(catalog, shared, history, weights, events, bought if repurchase else set())
        items = [derive(RecommendedItem, ranked_from, item_id=space.item_ids[i],
                        title=catalog.items[space.item_ids[i]].title, kind=str(space.kinds[i]),
                        score=round(float(scores[i]), 4), reasons=reasons.of(i, cold, ranked_from))
                 for i in picked]
        return RecommendationsView(user_id=user_id, purpose=access.purpose.name, items=items,
                                   fallback="popularity" if cold else None)


def _preference_inputs(access: Access, prefs: list[Preference]
                       ) -> tuple[Sourced[list[Preference]], Sourced[list[Preference]]]:
    """The user's stated and learned attribute preferences, each admitted by the gate on its own category."""
    attributes = [p for p in prefs if not is_item(p.token)]
    stated = [p for p in attributes if p.category == cat.STATED_PREFERENCE]
    learned = [p for p in attributes if p.category == cat.LEARNED_PREFERENCE]
    return (access.admit("stated_preferences", sourced(stated, cat.STATED_PREFERENCE), []),
            access.admit("learned_preferences", sourced(learned, cat.LEARNED_PREFERENCE), []))


@dataclass(frozen=True, slots=True)
class Reasons:
    """Why an item was recommended; each reason is derived from the inputs it cites, and carries their lineage."""

    catalog: Catalog
    shared: Sourced[recommender.ItemModel | None]
    history: Sourced[dict[str, float]]
    weights: Sourced[dict[str, float]]
    events: Sourced[list[tuple[str, str, dict[str, Any]]]]
    bought: set[str]  # the user's purchases when repurchase is the point, else nothing

    def of(self, i: int, cold: bool, ranked_from: list[Sourced[Any]]) -> list[Reason]:
        if cold:
            if self.shared.value is None or not self.shared.value.popularity.any():
                return [derive(Reason, [], text="Too few customers have chosen anything yet to rank by popularity; "
                                                 "we know too little about you yet to personalize.")]
            return [derive(Reason, [self.shared], text="Popular with customers; we know too little about you yet "
                                                        "to personalize.")]
        item_id = self.catalog.space.item_ids[i]
        tokens = self.catalog.item_tokens.get(item_id, [])
        weights = self.weights.value
        reasons: list[Reason] = []
        liked = sorted((t for t in tokens if weights.get(t, 0) > 0), key=lambda t: -weights[t])
        if liked:
            reasons.append(derive(Reason, [self.weights],
                                  text="You like " + ", ".join(describe(t) for t in liked[:3]) + "."))
        cited = self._chosen_with(item_id)
        if cited is not None:
            title = self.catalog.items[cited].title if cited in self.catalog.items else cited
            reasons.append(derive(Reason, [self.shared, self.history],
                                  text=f"Often chosen by people who also chose {title}."))
        if item_id in self.bought:
            reasons.append(derive(Reason, [self.events], text="You bought it before."))
        disliked = [t for t in tokens if weights.get(t, 0) < 0]
        if disliked:
            reasons.append(derive(Reason, [self.weights], text="It has " + ", ".join(
                describe(t) for t in disliked[:2]) + ", which you like less."))
        if reasons:
            return reasons
        if self.history in ranked_from:
            return [derive(Reason, [self.shared, self.history], text="Chosen by customers whose baskets overlap "
                                                                      "with yours.")]
        if self.shared.value is not None and self.shared.value.popularity.any():
            return [derive(Reason, [self.shared], text="Among the more popular of the rest of the catalog.")]
        return [derive(Reason, [], text="Among the rest of the catalog.")]

    def _chosen_with(self, item_id: str) -> str | None:
        """The item of the user's history that most supports ``item_id`` in the shared model, if any does (a
        pair at least ``min_group`` consenting users chose together)."""
        model = self.shared.value
        if model is None or item_id not in model.index:
            return None
        j = model.index[item_id]
        strength, source = max(((model.weights[model.index[h], j] * s, h) for h, s in self.history.value.items()
                                if h in model.index and model.chosen_together(h, item_id)), default=(0.0, ""))
        return source if strength > 0 else None
