"""The local vector index at 100,000 and 1,000,000 users: build, query latency, recall@10, realtime update.

User vectors are built the way the learning code builds them: a normalized weighted sum of 5-15 attribute token
embeddings (hashing embedder, 128 dimensions) from a vocabulary of 300 tokens. Token popularity is Zipf-like, and
each user leans to one of 12 scent families (half of their tokens come from it), so the population is clustered
as real taste is, not spread uniformly over the sphere. About one weight in ten is negative (a dislike).

For each size it reports:
- build: ``rebuild`` of the whole index from vectors (HNSW graph included) and its snapshot to disk; reopen time;
- query p50/p99: one ``query(k=10, exclude=[self])`` at a time through the async API, in this process;
- recall@10 against exact search on sampled users (and a tie-tolerant variant: a hit is any result scoring at
  least the exact 10th score, since clustered users have many near-equal neighbours);
- update+query: one user's vector changes (upsert, journaled) and their neighbours are queried right away;
- the same query on the exact (numpy) path, on fewer queries, for the ratio that justifies the HNSW threshold.

Run: .venv/bin/python benchmarks/bench_vector_index.py [--users 100000 1000000] [--queries 1000]
Timings share the machine with whatever else runs (the last column is the 1-minute load average when a row
finished; above the core count, other processes were competing); compare ratios from one run, not runs across
machines.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import percentile

from mnky_profiles.store.embedders.hashing import HashingEmbedder
from mnky_profiles.store.vectors import local
from mnky_profiles.store.vectors.local import LocalVectorIndex

DIM = 128
FAMILIES = ["floral", "woody", "citrus", "oriental", "fresh", "gourmand", "green", "aquatic", "spicy", "musky",
            "fruity", "leather"]
KINDS = ["note", "mood", "type", "style", "collection", "price"]


def vocabulary(rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """300 tokens: 12 families, and 288 attributes spread over the families (24 each)."""
    tokens = [f"family:{f}" for f in FAMILIES]
    family_of = list(range(len(FAMILIES)))
    for i in range(300 - len(FAMILIES)):
        tokens.append(f"{KINDS[i % len(KINDS)]}:{FAMILIES[i % len(FAMILIES)]}-{i:03d}")
        family_of.append(i % len(FAMILIES))
    order = rng.permutation(len(tokens))  # popularity rank independent of family
    return [tokens[i] for i in order], np.asarray(family_of)[order]


def population(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tokens, family_of = vocabulary(rng)
    emb = HashingEmbedder(DIM).embed_array(tokens).astype(np.float32)
    popularity = 1.0 / np.arange(1, len(tokens) + 1) ** 1.1  # Zipf-like over the popularity rank
    global_p = popularity / popularity.sum()
    family_p = []
    for f in range(len(FAMILIES)):
        p = np.where(family_of == f, popularity, 0.0)
        family_p.append(p / p.sum())
    family_pick = 1.0 / np.arange(1, len(FAMILIES) + 1) ** 0.8  # some families are more common than others
    family_pick /= family_pick.sum()
    out = np.empty((n, DIM), dtype=np.float32)
    chunk = 50_000
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        counts = rng.integers(5, 16, size=m)  # 5..15 tokens per user
        lean = rng.choice(len(FAMILIES), size=m, p=family_pick)
        weights = np.zeros((m, len(tokens)), dtype=np.float32)
        for j in range(15):
            active = counts > j
            from_family = rng.random(m) < 0.5
            picks = rng.choice(len(tokens), size=m, p=global_p)
            for f in range(len(FAMILIES)):
                rows = np.flatnonzero(from_family & (lean == f))
                picks[rows] = rng.choice(len(tokens), size=len(rows), p=family_p[f])
            w = rng.uniform(0.2, 1.0, size=m) * np.where(rng.random(m) < 0.1, -0.6, 1.0)
            np.add.at(weights, (np.flatnonzero(active), picks[active]), w[active])
        vectors = weights @ emb
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        out[start:start + m] = vectors
    return out


def exact_top(vectors: np.ndarray, queries: np.ndarray, selves: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k ids (row numbers) and the k-th score per query, self excluded."""
    ids = np.empty((len(queries), k), dtype=np.int64)
    kth = np.empty(len(queries))
    for s in range(0, len(queries), 100):
        scores = queries[s:s + 100] @ vectors.T
        scores[np.arange(len(scores)), selves[s:s + 100]] = -np.inf
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        for r in range(len(scores)):
            order = part[r][np.argsort(-scores[r, part[r]])]
            ids[s + r] = order
            kth[s + r] = scores[r, order[-1]]
    return ids, kth


def seconds(samples: list[float], q: float) -> float:
    """The ``q`` percentile, in milliseconds, of durations timed in seconds."""
    return percentile(samples, q, per_second=1)


async def measure(n: int, n_queries: int, workdir: Path, exact_queries: int, hnsw: dict[str, int]
                  ) -> dict[str, float]:
    t0 = time.perf_counter()
    vectors = population(n)
    gen_s = time.perf_counter() - t0
    ids = [f"user-{i:07d}" for i in range(n)]
    rng = np.random.default_rng(11)
    sample = rng.choice(n, size=n_queries, replace=False)
    truth, kth = exact_top(vectors, vectors[sample], sample, 10)

    directory = workdir / f"index-{n}"
    index = LocalVectorIndex.open(directory, DIM, space="hashing-v1-128", **hnsw)
    t0 = time.perf_counter()
    await index.rebuild(ids, vectors)
    build_s = time.perf_counter() - t0
    assert index.uses_hnsw, "the HNSW path needs more users than hnsw_threshold"
    await index.close()
    t0 = time.perf_counter()
    index = LocalVectorIndex.open(directory, DIM, space="hashing-v1-128", **hnsw)
    reopen_s = time.perf_counter() - t0

    latencies, hits, tolerant = [], 0, 0
    for qi, row in enumerate(sample):
        t = time.perf_counter()
        result = await index.query(vectors[row], 10, exclude=[ids[row]])
        latencies.append(time.perf_counter() - t)
        got = {int(uid[5:]) for uid, _ in result}
        hits += len(got & set(truth[qi].tolist()))
        tolerant += sum(score >= kth[qi] - 1e-6 for _, score in result)

    # A realtime update: one user's taste moves, their vector is upserted, and their neighbours are asked at once.
    cycles = []
    for row in sample[:300]:
        moved = vectors[row] + 0.3 * vectors[rng.integers(n)]
        moved /= np.linalg.norm(moved)
        t = time.perf_counter()
        await index.upsert([ids[row]], [moved])
        await index.query(moved, 10, exclude=[ids[row]])
        cycles.append(time.perf_counter() - t)
    await index.close()

    # The exact path on the same data, for the ratio.
    exact = LocalVectorIndex(DIM, hnsw_threshold=n + 1)
    await exact.rebuild(ids, vectors)
    exact_lat = []
    for row in sample[:exact_queries]:
        t = time.perf_counter()
        await exact.query(vectors[row], 10, exclude=[ids[row]])
        exact_lat.append(time.perf_counter() - t)
    shutil.rmtree(directory)
    return {
        "users": n, "gen_s": gen_s, "build_s": build_s, "reopen_s": reopen_s,
        "p50_ms": seconds(latencies, 50), "p99_ms": seconds(latencies, 99),
        "recall": hits / (10 * n_queries), "recall_tol": tolerant / (10 * n_queries),
        "cycle_p50_ms": seconds(cycles, 50), "cycle_p99_ms": seconds(cycles, 99),
        "exact_p50_ms": seconds(exact_lat, 50), "exact_p99_ms": seconds(exact_lat, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--exact-queries", type=int, default=100)
    parser.add_argument("--connectivity", type=int, default=local.DEFAULT_CONNECTIVITY)
    parser.add_argument("--expansion-add", type=int, default=local.DEFAULT_EXPANSION_ADD)
    parser.add_argument("--expansion-search", type=int, default=local.DEFAULT_EXPANSION_SEARCH)
    args = parser.parse_args()
    hnsw = {"connectivity": args.connectivity, "expansion_add": args.expansion_add,
            "expansion_search": args.expansion_search}

    import usearch

    print(f"$ {os.path.relpath(sys.executable)} {' '.join(sys.argv)}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, usearch {usearch.__version__}, "
          f"{os.cpu_count()} cores, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '-')}")
    print(f"HNSW: connectivity {args.connectivity}, expansion_add {args.expansion_add}, "
          f"expansion_search {args.expansion_search}; dim {DIM}; {args.queries} queries, k=10")
    header = (f"{'users':>10} {'build s':>8} {'reopen s':>8} {'p50 ms':>7} {'p99 ms':>7} {'recall@10':>9} "
              f"{'tie-tol':>7} {'upd+q p50':>9} {'upd+q p99':>9} {'exact p50':>9} {'exact/hnsw':>10} {'load':>5}")
    print(header, flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="bench-vectors-"))
    try:
        for n in args.users:
            r = asyncio.run(measure(n, args.queries, workdir, args.exact_queries, hnsw))
            print(f"{r['users']:>10,} {r['build_s']:>8.1f} {r['reopen_s']:>8.2f} {r['p50_ms']:>7.3f} "
                  f"{r['p99_ms']:>7.3f} {r['recall']:>9.4f} {r['recall_tol']:>7.4f} {r['cycle_p50_ms']:>9.3f} "
                  f"{r['cycle_p99_ms']:>9.3f} {r['exact_p50_ms']:>9.2f} {r['exact_p50_ms'] / r['p50_ms']:>9.1f}x "
                  f"{os.getloadavg()[0]:>5.1f}",
                  flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
