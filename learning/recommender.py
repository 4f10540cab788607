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

DEFAULT_L2 = 200.0
CHUNK = 8192


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

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}


def fit(item_ids: Sequence[str], histories: Iterable[Mapping[str, float]], l2: float = DEFAULT_L2) -> ItemModel:
    """Fit EASE on user histories (item -> interaction strength). Streams users in chunks to bound memory."""
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    gram = np.zeros((n, n), dtype=np.float64)
    counts = np.zeros(n, dtype=np.float64)
    chunk = np.zeros((CHUNK, n), dtype=np.float32)
    filled = users = 0
    for history in histories:
        row = chunk[filled]
        for item, strength in history.items():
            i = index.get(item)
            if i is not None and strength > 0:
                row[i] = strength
        if row.any():
            counts += row > 0
            filled += 1
            users += 1
        else:
            row[:] = 0
        if filled == CHUNK:
            gram += chunk.T.astype(np.float64) @ chunk
            chunk[:] = 0
            filled = 0
    if filled:
        gram += chunk[:filled].T.astype(np.float64) @ chunk[:filled]
    gram[np.diag_indices(n)] += l2
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)
    weights[np.diag_indices(n)] = 0.0
    popularity = counts / counts.max() if counts.max() > 0 else counts
    return ItemModel(list(item_ids), weights.astype(np.float32), popularity.astype(np.float32), users)


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


@dataclass(frozen=True, slots=True)
class Scored:
    item_id: str
    score: float
    collaborative: float
    content: float
    popular: float


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
        mapped = np.array([model.index.get(item, -1) for item in space.item_ids])
        known = mapped >= 0
        if x.any():
            collaborative[known] = (x @ model.weights)[mapped[known]]
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
    order = candidates[np.argsort(-scores[candidates], kind="stable")][: max(k * 5, k)]
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
