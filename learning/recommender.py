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
    """The shared model: EASE weights over the items seen in training, and item popularity.

    It keeps what a withdrawal needs to be taken out within the call (``without``): the precision matrix
    ``P = (X'X + l2 I)^-1``, how many users chose each item and each pair, and the scaled row each user was fitted
    on, by an eight-byte digest of their id. Weights and popularity are derived from those, and every one of them
    that leaves the server rests on at least ``min_group`` users: an item-to-item weight on ``min_group`` users who
    chose both, a popularity share on ``min_group`` who chose the item (below that it is zero).
    """

    item_ids: list[str]
    precision: np.ndarray  # (items, items), float64
    counts: np.ndarray  # (items,) users who chose each item
    together: np.ndarray  # (items, items) users who chose both, saturating at the dtype's maximum
    owners: np.ndarray  # (users,) uint64 digests of the users fitted on, sorted
    row_ptr: np.ndarray  # CSR rows of the users, in the order of ``owners``
    row_items: np.ndarray
    row_values: np.ndarray
    min_group: int = 1
    weights: np.ndarray = field(init=False)  # (items, items), zero diagonal
    popularity: np.ndarray = field(init=False)  # (items,), in [0, 1]
    index: dict[str, int] = field(init=False)
    _positions: tuple[Sequence[str], np.ndarray] | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.weights = _weights(self.precision, self.together, self.min_group)
        counts = np.where(self.counts >= self.min_group, self.counts, 0.0)
        peak = float(counts.max()) if counts.size else 0.0
        self.popularity = (counts / peak if peak > 0 else counts).astype(np.float32)

    @property
    def users(self) -> int:
        """How many users it was fitted on (and not taken out of since)."""
        return int((np.diff(self.row_ptr) > 0).sum())

    def learned_from(self, owner: int) -> bool:
        row = self._row(owner)
        return row is not None and self.row_ptr[row + 1] > self.row_ptr[row]

    def _row(self, owner: int) -> int | None:
        at = int(np.searchsorted(self.owners, np.uint64(owner)))
        return at if at < len(self.owners) and int(self.owners[at]) == owner else None

    def without(self, owner: int) -> ItemModel:
        """The model as if the user with digest ``owner`` had never been fitted on (Sherman-Morrison)."""
        row = self._row(owner)
        if row is None or self.row_ptr[row + 1] == self.row_ptr[row]:
            return self
        start, stop = int(self.row_ptr[row]), int(self.row_ptr[row + 1])
        idx, values = self.row_items[start:stop], self.row_values[start:stop]
        # (A - x x')^-1 = P + (P x)(P x)' / (1 - x' P x), P symmetric
        px = self.precision[:, idx] @ values
        precision = self.precision + np.outer(px / (1.0 - float(values @ px[idx])), px)
        counts = self.counts.copy()
        counts[idx] -= 1
        together = self.together.copy()
        block = np.ix_(idx, idx)
        saturated = together[block] == np.iinfo(together.dtype).max  # counts past the cap stay at it
        together[block] = np.where(saturated, together[block], together[block] - 1)
        row_ptr = self.row_ptr.copy()
        row_ptr[row + 1:] -= stop - start
        # The user's row goes too, digest and all: an unsalted digest of the id left in the file would still tell
        # whoever holds it that this id was once fitted on.
        owners, row_ptr = np.delete(self.owners, row), np.delete(row_ptr, row + 1)
        return ItemModel(self.item_ids, precision, counts, together, owners, row_ptr,
                         np.delete(self.row_items, np.s_[start:stop]), np.delete(self.row_values, np.s_[start:stop]),
                         self.min_group)

    def with_min_group(self, min_group: int) -> ItemModel:
        if min_group == self.min_group:
            return self
        return ItemModel(self.item_ids, self.precision, self.counts, self.together, self.owners, self.row_ptr,
                         self.row_items, self.row_values, min_group)

    def chosen_together(self, a: str, b: str) -> bool:
        """At least ``min_group`` users chose both ``a`` and ``b``."""
        i, j = self.index.get(a), self.index.get(b)
        return i is not None and j is not None and int(self.together[i, j]) >= max(self.min_group, 1)

    ARRAYS = ("item_ids", "precision", "counts", "together", "owners", "row_ptr", "row_items", "row_values")

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as named arrays, the form it is kept in between runs."""
        return {name: np.asarray(getattr(self, name)) for name in self.ARRAYS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], min_group: int = 1) -> ItemModel | None:
        """None for a file written in an older form (it holds no precision matrix): the next fit replaces it."""
        if any(name not in arrays for name in cls.ARRAYS):
            return None
        a = arrays
        return cls([str(i) for i in a["item_ids"]], a["precision"], a["counts"], a["together"], a["owners"],
                   a["row_ptr"], a["row_items"], a["row_values"], min_group)

    def positions(self, item_ids: Sequence[str]) -> np.ndarray:
        """Each item's row in this model, -1 for items it was not fitted on; kept for the last list asked."""
        cached = self._positions
        if cached is not None and cached[0] is item_ids and len(cached[1]) == len(item_ids):
            return cached[1]
        mapped = np.fromiter((self.index.get(item, -1) for item in item_ids), dtype=np.intp, count=len(item_ids))
        self._positions = (item_ids, mapped)
        return mapped


def _weights(precision: np.ndarray, together: np.ndarray, min_group: int) -> np.ndarray:
    """``B = -P / diag(P)`` with a zero diagonal; with ``min_group`` above 1, pairs fewer chose together are 0."""
    n = len(precision)
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    weights = (precision / -np.diag(precision)).astype(np.float32)
    weights[np.diag_indices(n)] = 0.0
    if min_group > 1:
        weights[together < min_group] = 0.0
    return weights


def fit(item_ids: Sequence[str], histories: Iterable[Mapping[str, float]], l2: float = DEFAULT_L2, *,
        owners: Sequence[int] | np.ndarray | None = None, min_group: int = 1) -> ItemModel:
    """Fit EASE on user histories (item -> interaction strength > 0); items outside ``item_ids`` are ignored.
    ``owners`` are digests of the users the histories belong to (what ``ItemModel.without`` takes); without them
    each history is numbered.

    Each history is first scaled to a peak of 1. Decay orders the items within one history; it should not decide
    how much a whole user counts, which it would otherwise do through the time the histories are taken at (as of
    now, a user last seen months ago has all weights near zero and drops out of the fit while ``l2`` stays put).
    Scaled, the fit is the same whatever that time, and ``l2`` is in units of a user's strongest interaction.

    The closed form needs ``P = (X'X + l2 I)^-1`` over items. With fewer users than items it is computed through
    the users' side instead (Woodbury): ``P = (I - X'(XX' + l2 I)^-1 X) / l2``, a fraction of the work on a
    long-tailed catalog.
    """
    index = {item: i for i, item in enumerate(item_ids)}
    n = len(item_ids)
    rows: list[tuple[int, np.ndarray, np.ndarray]] = []
    for u, history in enumerate(histories):
        pairs = sorted((index[item], float(strength)) for item, strength in history.items()
                       if strength > 0 and item in index)
        if pairs:
            values = np.array([v for _, v in pairs], dtype=np.float64)
            owner = u if owners is None else int(owners[u])
            rows.append((owner, np.array([i for i, _ in pairs], dtype=np.intp), values / values.max()))
    rows.sort(key=lambda r: r[0])
    counts = np.zeros(n, dtype=np.float64)
    for _, idx, _ in rows:
        counts[idx] += 1.0
    if not rows or n == 0:
        precision, together = np.eye(n, dtype=np.float64) / l2, np.zeros((n, n), dtype=np.uint16)
    elif len(rows) < n:
        precision, together = _ease_dual([(i, v) for _, i, v in rows], n, l2)
    else:
        precision, together = _ease_primal([(i, v) for _, i, v in rows], n, l2)
    sizes = np.array([len(idx) for _, idx, _ in rows], dtype=np.int64)
    row_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    row_items = np.concatenate([idx for _, idx, _ in rows]) if rows else np.zeros(0, dtype=np.intp)
    row_values = np.concatenate([v for _, _, v in rows]) if rows else np.zeros(0, dtype=np.float64)
    return ItemModel(list(item_ids), precision, counts, together, np.array([r[0] for r in rows], dtype=np.uint64),
                     row_ptr, row_items.astype(np.int32), row_values, min_group)


def _dense(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int) -> np.ndarray:
    x = np.zeros((len(rows), n), dtype=np.float64)
    for u, (idx, values) in enumerate(rows):
        x[u, idx] = values
    return x


def _pairs(binary: np.ndarray) -> np.ndarray:
    """Users who chose both of each pair of items, from a (users, items) 0/1 matrix, saturating at uint16."""
    counted: np.ndarray = np.minimum(binary.T @ binary, np.iinfo(np.uint16).max).astype(np.uint16)
    return counted


def _ease_primal(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """``P = (X'X + l2 I)^-1``; the Gram matrix (and the pair counts) are summed over bounded chunks of users."""
    gram = np.zeros((n, n), dtype=np.float64)
    together = np.zeros((n, n), dtype=np.float32)  # exact up to 2^24 users
    step = max(1, min(CHUNK, CHUNK_CELLS // n))
    for start in range(0, len(rows), step):
        x = _dense(rows[start:start + step], n)
        gram += x.T @ x
        binary = (x > 0).astype(np.float32)
        together += binary.T @ binary
    gram[np.diag_indices(n)] += l2
    precision = np.linalg.inv(gram)
    return precision, np.minimum(together, np.iinfo(np.uint16).max).astype(np.uint16)


def _ease_dual(rows: Sequence[tuple[np.ndarray, np.ndarray]], n: int, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """The same precision through the (users x users) kernel, for fewer users than items."""
    x = _dense(rows, n)
    kernel = x @ x.T
    kernel[np.diag_indices(len(x))] += l2
    solved = np.linalg.solve(kernel, x)  # (XX' + l2 I)^-1 X
    precision = -(x.T @ solved)
    precision[np.diag_indices(n)] += 1.0
    precision /= l2
    return precision, _pairs((x > 0).astype(np.float32))


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
