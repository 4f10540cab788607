"""The population that ``benchmarks/bench_similar.py`` measures, written as the rows the product would hold.

Every user has a latent taste from the demo's taste model (``examples.demo``: a few scent families, notes and
moods, product types, a price band, sometimes disliked notes) over the demo catalog's attribute tokens, so the
population is clustered the way real taste is. From it each user gets a handful of behavioural events in the 180
days before the dataset's ``now`` (one to four sessions of one to four item views, drawn by affinity, with the
clicks, dwells, carts, purchases, ratings and searches that follow) and, for some, stated likes and dislikes.

Nothing is approximated: the rows are what the product computes from that history.

- Implicit preferences: ``learning.preferences.event_signals`` for every event (in time order, ids in that order),
  folded by ``fold`` from nothing: what ``LearningRuns.relearn`` stores for a user with these events.
- Explicit preferences: the ``likes``/``dislikes`` attributes (values through ``coerce_value``), turned into
  weights by ``stated_weights``, as ``PreferenceLearner.on_statement`` does for one statement of both fields.
- The vector: ``learning.vectors.vector_weights`` and ``user_vector`` over the hashing embedder's token vectors,
  as ``UserVectors.of`` computes it, stored as ``IndexUpkeep.refresh`` stores it (``encode``).
  ``bench_similar.py`` checks a sample against ``UserVectors.of`` on the rows read back, bit for bit.
- Consent: every user granted profiling (no expiry) at sign-up, so every user is in the similarity index; some
  also granted personalization, recommendation or marketing.

The events themselves are not stored: the measured tools never read them (evidence ids in the preferences number
the events as ``user index * 1000 + n``). A user's rows depend only on ``(seed, user index, now)``, so chunks can
be made in any process and in any order.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mnky_profiles.domain.events import Event
from mnky_profiles.domain.preferences import Preference
from mnky_profiles.domain.profiles import Attribute, coerce_value
from mnky_profiles.examples import demo
from mnky_profiles.learning.catalog import Catalog
from mnky_profiles.learning.preferences import event_signals, fold, stated_weights
from mnky_profiles.learning.vectors import encode, user_vector, vector_weights
from mnky_profiles.store.embedders.hashing import hashed_vector

DAY = 86_400
WINDOW_DAYS = 180
EVENT_IDS_PER_USER = 1000
CONSENT_EVIDENCE = ("Shown the profiling notice (v3): \"We compare your preferences with other customers' to "
                    "find people with similar taste.\" Ticked the box.")
OTHER_PURPOSES = (("personalization", 0.7), ("recommendation", 0.6), ("marketing", 0.35))


def user_id(index: int) -> str:
    return f"user-{index:07d}"


@dataclass
class World:
    """What every user is made from: the catalog, the demo's taste model over it, the token vectors."""

    seed: int
    now_s: int
    half_life_days: float
    dim: int
    model: str  # the embedder's name, stored with each vector
    catalog: Catalog
    taste_index: Any  # examples.demo._CatalogIndex
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def make(cls, seed: int, now_s: int, half_life_days: float, dim: int) -> World:
        items = demo.generate_catalog(seed)
        return cls(seed, now_s, half_life_days, dim, f"hashing-v1-{dim}", Catalog.build(items),
                   demo._CatalogIndex(items))

    def embedding_table(self, tokens: Sequence[str]) -> dict[str, np.ndarray]:
        """The hashing embedder's vectors as ``UserVectors.embeddings`` keeps them (float64), made once per token."""
        for token in tokens:
            if token not in self.embeddings:
                self.embeddings[token] = np.asarray(hashed_vector(token, self.dim).tolist(), dtype=np.float64)
        return self.embeddings


@dataclass
class Rows:
    """The rows of a run of users, as tuples in the column order of the tables they go to."""

    profiles: list[tuple[Any, ...]] = field(default_factory=list)
    subject_keys: list[tuple[Any, ...]] = field(default_factory=list)
    consents: list[tuple[Any, ...]] = field(default_factory=list)
    attributes: list[tuple[Any, ...]] = field(default_factory=list)
    preferences: list[tuple[Any, ...]] = field(default_factory=list)
    vectors: list[tuple[Any, ...]] = field(default_factory=list)
    events: int = 0  # behavioural events behind the implicit preferences (not stored)
    cold: int = 0  # users whose weights gave no vector (not indexed)

    COLUMNS = {
        "profiles": ("user_id", "created_at", "updated_at"),
        "subject_keys": ("user_id", "secret"),
        "consents": ("user_id", "purpose", "state", "source", "evidence", "recorded_at", "expires_at"),
        "attributes": ("user_id", "field", "source", "value", "confidence", "observed_at"),
        "preferences": ("user_id", "token", "source", "weight", "ref_at", "evidence_count", "evidence",
                        "updated_at"),
        "user_vectors": ("user_id", "model", "vector", "as_of"),
    }


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _history(rng: random.Random, world: World, taste: Any) -> list[tuple[int, str, str | None, dict[str, Any]]]:
    """A handful of events: (time, type, item, properties), drawn from the user's taste like the demo's."""
    cat = world.taste_index
    scores = cat.scores(demo._taste_weights(taste, cat))
    cumulative = cat.cumulative(scores)
    now_s, start = world.now_s, world.now_s - WINDOW_DAYS * DAY
    out: list[tuple[int, str, str | None, dict[str, Any]]] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        at = rng.randint(start, now_s - 6 * 3600)
        if rng.random() < 0.3:
            at += rng.randint(5, 40)
            out.append((at, "search", None, {"query": demo._query(rng, taste)}))
        cart = []
        for row in rng.choices(range(len(cat.ids)), cum_weights=cumulative, k=rng.choice((1, 2, 2, 3, 4))):
            item_id, affinity = cat.ids[row], demo._funnel_affinity(int(scores[row]))
            at += rng.randint(3, 60)
            if rng.random() < 0.5:
                out.append((at, "click", item_id, {}))
                at += rng.randint(1, 4)
            out.append((at, "view", item_id, {}))
            if rng.random() < 0.6:
                seconds = min(int(rng.expovariate(1 / (40 + 80 * affinity))) + 3, 1800)
                at += seconds
                out.append((at, "dwell", item_id, {"seconds": seconds}))
            if cat.is_product[row] and rng.random() < 0.02 + 0.3 * affinity:
                at += rng.randint(2, 30)
                out.append((at, "add_to_cart", item_id, {}))
                cart.append((row, affinity))
        at += rng.randint(30, 300)
        for row, affinity in cart:
            if rng.random() < 0.5:
                continue
            out.append((at, "purchase", cat.ids[row], {"quantity": 1, "price": cat.prices[row]}))
            if rng.random() < 0.35:
                rating = min(5, max(1, round(2.4 + 2.6 * affinity + rng.gauss(0, 0.7))))
                out.append((at + rng.randint(3, 20) * DAY, "rating", cat.ids[row], {"rating": rating}))
    out = [e for e in out if e[0] <= now_s - 60]  # a rating days later may not have happened yet
    out.sort(key=lambda e: e[0])
    return out


def _statement(rng: random.Random, world: World, taste: Any) -> list[Attribute]:
    """Stated likes (and dislikes) for some users, one statement of both fields, as ``update_profile`` stores it."""
    said: list[str] = []
    if rng.random() < 0.4:
        said = rng.sample(taste.notes, rng.randint(1, len(taste.notes))) + rng.sample(taste.families, 1)
        if rng.random() < 0.4:
            said.append(rng.choice(taste.types))
    dislikes = list(taste.disliked) if taste.disliked and rng.random() < 0.5 else []
    if not said and not dislikes:
        return []
    at = _dt(rng.randint(world.now_s - WINDOW_DAYS * DAY, world.now_s - 60))
    out = []
    for name, values in (("likes", [s for s in said if s not in taste.disliked]), ("dislikes", dislikes)):
        if values:
            out.append(Attribute(name, coerce_value(name, list(dict.fromkeys(values))), "explicit", 1.0, at))
    return out


def _explicit(stated: list[Attribute], world: World) -> list[Preference]:
    """``PreferenceLearner.on_statement`` for a user with no explicit weights yet."""
    if not stated:
        return []
    at = max(a.observed_at for a in stated)
    return [Preference.stated(t, w, at) for t, w in stated_weights(stated, world.catalog.vocabulary).items()]


def make_user(world: World, index: int, rows: Rows) -> None:
    rng = random.Random(f"similar/{world.seed}/{index}")
    uid = user_id(index)
    taste = demo._taste(rng, world.taste_index)
    history = _history(rng, world, taste)
    stated = _statement(rng, world, taste)
    first = min([h[0] for h in history] + [int(a.observed_at.timestamp()) for a in stated])
    signup = first - rng.randint(0, 2 * 365) * DAY - rng.randint(0, DAY)

    base = index * EVENT_IDS_PER_USER
    events = [(base + n, Event(uid, kind, _dt(ts), item, props))
              for n, (ts, kind, item, props) in enumerate(history, start=1)]
    implicit = fold({}, event_signals(events, world.catalog), world.half_life_days)
    preferences = list(implicit.values()) + _explicit(stated, world)
    rows.events += len(history)

    created = _dt(signup)
    rows.profiles.append((uid, created, max([a.observed_at for a in stated], default=created)))
    rows.subject_keys.append((uid, secrets.token_hex(32)))  # made with every profile, as create_profile does
    rows.consents.append((uid, "profiling", "granted", "web:signup-form", CONSENT_EVIDENCE, created, None))
    for purpose, share in OTHER_PURPOSES:
        if rng.random() < share:
            rows.consents.append((uid, purpose, "granted", "web:signup-form", None, created, None))
    rows.attributes += [(uid, a.field, a.source, a.value, a.confidence, a.observed_at) for a in stated]
    rows.preferences += [(uid, p.token, p.source, p.weight, p.ref_at, p.evidence_count, list(p.evidence),
                          p.updated_at) for p in sorted(preferences, key=lambda p: (p.token, p.source))]

    # UserVectors.of, stored as IndexUpkeep.refresh stores it
    made = vector_weights(preferences, world.half_life_days)
    vector = None if made is None else user_vector(made[0], world.embedding_table(list(made[0])), world.dim)
    if made is None or vector is None:
        rows.cold += 1
        return
    rows.vectors.append((uid, world.model, encode(vector), made[1]))


# -- in worker processes --------------------------------------------------------------------------------------

_world: World | None = None


def init_worker(seed: int, now_s: int, half_life_days: float, dim: int) -> None:
    global _world
    _world = World.make(seed, now_s, half_life_days, dim)


def make_chunk(first: int, last: int) -> Rows:
    """Users ``first..last`` (inclusive), in a worker set up by ``init_worker``."""
    assert _world is not None, "init_worker did not run"
    rows = Rows()
    for index in range(first, last + 1):
        make_user(_world, index, rows)
    return rows
