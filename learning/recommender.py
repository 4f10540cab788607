"""Recommendation: a shared item-to-item model (EASE) blended with the user's own attribute preferences.

EASE (Steck, 2019) learns item-to-item weights in closed form from the interaction matrix: B = -P / diag(P) with
P = (X'X + lambda I)^-1 and a zero diagonal. It is fitted on the users who consented to profiling only. A user's
scores are ``x_u B`` (what people with similar baskets chose) plus their attribute preferences scored against
each item's attributes (what they told us or showed us they like), so a user with few interactions still gets
recommendations that follow their tastes, and a new user falls back to popularity, saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

DEFAULT_L2 = 50.0  # in units of a user's strongest interaction; see benchmarks/results/recommend_quality.md
CHUNK = 8192  # users per block of the Gram sum
CHUNK_CELLS = 1 << 23  # at most this many cells (64 MiB of float64) per block


@dataclass
class ItemSpace:
    """Items and their attribute tokens as a row-normalized matrix, for content scores and diversity."""

    item_ids: list[str]
    tokens: list[str]
    attributes: np.ndarray  # (items, tokens), rows of unit length
    kinds: np.ndarray  # item kind per row ("product" / "content")
    index: dict[str, int] = field(init=False)
    token_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.token_index = {t: j for j, t in enumerate(self.tokens)}

    @classmethod
    def build(cls, items: Iterable[tuple[str, str, Sequence[str]]]) -> ItemSpace:
        """From (item_id, kind, tokens) triples."""
        rows = sorted(items)
        tokens = sorted({t for _, _, ts in rows for t in ts})
        where = {t: j for j, t in enumerate(tokens)}
        matrix = np.zeros((len(rows), len(tokens)), dtype=np.float32)
        for i, (_, _, ts) in enumerate(rows):
            for t in ts:
                matrix[i, where[t]] = 1.0
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix /= np.maximum(norms, 1e-12)
        return cls([r[0] for r in rows], tokens, matrix, np.array([r[1] for r in rows]))

    def content_scores(self, weights: Mapping[str, float]) -> np.ndarray:
        w = np.zeros(len(self.tokens), dtype=np.float32)
        for token, weight in weights.items():
            j = self.token_index.get(token)
            if j is not None:
                w[j] = weight
        return self.attributes @ w


@dataclass
class ItemModel:
    """The shared model: EASE weights over the items seen in training, and item popularity."""

    item_ids: list[str]
    weights: np.ndarray  # (items, items), zero diagonal
    popularity: np.ndarray  # (items,), in [0, 1]
    users: int  # how many users it was fitted on
    index: dict[str, int] = field(init=False)
    _positions: tuple[Sequence[str], np.ndarray] | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays, the form it is kept in between runs."""
        return {"item_ids": np.array(self.item_ids), "weights": self.weights, "popularity": self.popularity,
                "users": np.array(self.users)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ItemModel:
        return cls([str(i) for i in arrays["item_ids"]], arrays["weights"], arrays["popularity"],
                   int(arrays["users"]))

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's row in this model, -1 for items it was not fitted on; kept for the last list asked."""
        cached = self._positions
        if cached is not None and cached[0] is item_ids and len(cached[1]) == len(item_ids):
            return cached[1]
        mapped = np.fromiter((self.index.get(item, -1) for item in item_ids), dtype=np.intp, count=len(item_ids))
        self._positions = (item_ids, mapped)
        return mapped


def fit(item_ids: Sequence[str], histories: Iterable[Mapping[str, float]], l2: float = DEFAULT_L2) -> ItemModel:
    """Fit EASE on user histories (item -> interaction strength > 0); items outside ``item_ids`` are ignored.

    Each history is first scaled to a peak of 1. Decay orders the items within one history; it should not decide
    how much a whole user counts, which it would otherwise do through the time the histories are taken at (as of
    now, a user last seen months ago has all weights near zero and drops out of the fit while ``l2`` stays put).
    Scaled, the fit is the same whatever that time, and ``l2`` is in units of a user's strongest interaction.

    The closed form needs ``P = (X'X + l2 I)^-1`` over items. With fewer users than items it is computed through
    the users' side instead (Woodbury): ``P = (I - X'(XX' + l2 I)^-1 X) / l2``, so ``B_ij = M_ij / (1 - M_jj)``
    with ``M = X'(XX' + l2 I)^-1 X``, the same weights for a fraction of the work on a long-tailed catalog.
    """
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    for history in histories:
        pairs = sorted((index[item], float(strength)) for item, strength in history.items()
                       if strength > 0 and item in index)
        if pairs:
            values = np.array([v for _, v in pairs], dtype=np.float64)
            rows.append((np.array([i for i, _ in pairs], dtype=np.intp), values / values.max()))
    counts = np.zeros(n, dtype=np.float64)
    for idx, _ in rows:
        counts[idx] += 1.0
    if not rows or n == 0:
        weights = np.zeros((n, n), dtype=np.float32)
    elif len(rows) < n:
        weights = _ease_dual(_dense(rows, n), l2)
    else:
        weights = _ease_primal(rows, n, l2)
    popularity = counts / counts.max() if n and counts.max() > 0 else counts
    return ItemModel(list(item_ids), weights, popularity.astype(np.float32), len(rows))


def _dense(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    x = np.zeros((len(rows), n), dtype=np.float64)
    for u, (idx, values) in enumerate(rows):
        x[u, idx] = values
    return x


def _ease_primal(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int, l2: float) -> np.ndarray:
    """``B = -P / diag(P)`` with ``P = (X'X + l2 I)^-1``; the Gram matrix is summed over bounded chunks of users."""
    gram = np.zeros((n, n), dtype=np.float64)
    step = max(1, min(CHUNK, CHUNK_CELLS // n))
    for start in range(0, len(rows), step):
        x = _dense(rows[start:start + step], n)
        gram += x.T @ x
    gram[np.diag_indices(n)] += l2
    precision = np.linalg.inv(gram)
    del gram
    precision /= -np.diag(precision)
    precision[np.diag_indices(n)] = 0.0
    return precision.astype(np.float32)


def _ease_dual(x: np.ndarray, l2: float) -> np.ndarray:
    """The same weights through the (users x users) kernel, for fewer users than items."""
    kernel = x @ x.T
    kernel[np.diag_indices(len(x))] += l2
    solved = np.linalg.solve(kernel, x)  # (XX' + l2 I)^-1 X
    diagonal = np.einsum("ui,ui->i", x, solved)  # M_jj, kept in double precision: 1 - M_jj can be small
    weights = x.T.astype(np.float32) @ solved.astype(np.float32)
    weights /= (1.0 - diagonal).astype(np.float32)
    weights[np.diag_indices(len(weights))] = 0.0
    return weights


@dataclass(frozen=True, slots=True)
class Blend:
    """How the signals combine; tuned on the quality benchmark (benchmarks/bench_recommend_quality.py)."""

    content: float = 0.35  # attribute preferences, relative to the collaborative score
    popularity: float = 0.05
    repurchase: float = 1.0  # own history, when repurchase is the point
    diversity: float = 0.15  # MMR trade-off: 0 = pure relevance


def _unit(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) if x.size else 0.0
    return x / peak if peak > 1e-12 else x


def score(space: ItemSpace, model: ItemModel | None, history: Mapping[str, float], weights: Mapping[str, float],
          blend: Blend, repurchase: bool) -> np.ndarray:
    """A relevance score for every item of ``space`` (same order)."""
    n = len(space.item_ids)
    collaborative = np.zeros(n, dtype=np.float32)
    popular = np.zeros(n, dtype=np.float32)
    own = np.zeros(n, dtype=np.float32)
    if model is not None:
        x = np.zeros(len(model.item_ids), dtype=np.float32)
        for item, strength in history.items():
            i = model.index.get(item)
            if i is not None and strength > 0:
                x[i] = strength
        mapped = model.positions(space.item_ids)
        known = mapped >= 0
        active = np.flatnonzero(x)
        if active.size:  # x_u B over the user's own items only: a short history reads a few rows of B
            collaborative[known] = (x[active] @ model.weights[active])[mapped[known]]
        popular[known] = model.popularity[mapped[known]]
    for item, strength in history.items():
        i = space.index.get(item)
        if i is not None:
            own[i] = strength
    total = _unit(collaborative) + blend.content * _unit(space.content_scores(weights)) + blend.popularity * popular
    if repurchase:
        total = total + blend.repurchase * _unit(own)
    return total


def rerank(space: ItemSpace, scores: np.ndarray, candidates: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: trade relevance against similarity to what is already picked."""
    order = _best(scores, candidates, max(k * 5, k))
    if diversity <= 0 or len(order) <= 1:
        return [int(i) for i in order[:k]]
    picked: list[int] = []
    relevance = _unit(scores[order])
    max_sim = np.zeros(len(order), dtype=np.float32)
    available = np.ones(len(order), dtype=bool)
    for _ in range(min(k, len(order))):
        value = (1 - diversity) * relevance - diversity * max_sim
        value[~available] = -np.inf
        best = int(np.argmax(value))
        picked.append(int(order[best]))
        available[best] = False
        sims = space.attributes[order] @ space.attributes[order[best]]
        max_sim = np.maximum(max_sim, sims)
    return picked


def _best(scores: np.ndarray, candidates: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` best candidates, best first, ties in candidate order (a stable sort's head, without the sort)."""
    values = -scores[candidates]
    if len(values) > n:
        cut = np.partition(values, n - 1)[n - 1]
        above = np.flatnonzero(values < cut)
        tied = np.flatnonzero(values == cut)[: n - len(above)]
        keep = np.sort(np.concatenate([above, tied]))
    else:
        keep = np.arange(len(values))
    ranked: np.ndarray = np.asarray(candidates)[keep[np.argsort(values[keep], kind="stable")]]
    return ranked
