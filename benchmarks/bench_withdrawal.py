"""What it costs to take a withdrawn user out of the shared item model within the call, against a full refit.

A user who withdraws profiling consent must stop shaping anyone's recommendations before ``record_consent``
returns. The item model (EASE) is closed form, ``B = -P / diag(P)`` with ``P = (X'X + l2 I)^-1``, so one user's row
``x`` comes out of ``P`` by a rank-one downdate (Sherman-Morrison, ``ItemModel.without``): O(items^2), against the
O(users * items^2 + items^3) of a refit. This benchmark fits a model on synthetic histories (Zipf-popular items,
5-40 items a user), takes ``--withdrawals`` users out one by one, timing each downdate and the save of the model
file that follows it in the product (``SharedModel.forget``), then refits without those users (the baseline, in the
same run) and checks that the two models agree.

    .venv/bin/python benchmarks/bench_withdrawal.py --items 10000 --users 20000 --write
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from common import ROOT, command_line, loadavg, log, machine, revision

from mnky_profiles.learning.recommender import DEFAULT_L2, fit
from mnky_profiles.store.models import ModelFiles

RESULTS = ROOT / "benchmarks" / "results" / "withdrawal.md"


def histories(items: int, users: int, seed: int) -> list[dict[str, float]]:
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    out = []
    for _ in range(users):
        chosen = rng.choice(items, size=int(rng.integers(5, 41)), replace=False, p=popularity)
        out.append({f"i{j}": float(rng.uniform(0.2, 1.0)) for j in chosen})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--withdrawals", type=int, default=10)
    parser.add_argument("--min-group", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true", help=f"record the result in {RESULTS.relative_to(ROOT)}")
    args = parser.parse_args()

    item_ids = [f"i{j}" for j in range(args.items)]
    data = histories(args.items, args.users, args.seed)
    owners = list(range(1, args.users + 1))
    log(f"fitting on {args.users:,} users and {args.items:,} items (load {loadavg()})")
    t0 = time.perf_counter()
    model = fit(item_ids, data, DEFAULT_L2, owners=owners, min_group=args.min_group)
    fit_seconds = time.perf_counter() - t0
    log(f"  fitted in {fit_seconds:.1f} s")

    rng = np.random.default_rng(args.seed + 1)
    gone = sorted(int(u) for u in rng.choice(owners, size=args.withdrawals, replace=False))
    downdates, saves = [], []
    with tempfile.TemporaryDirectory() as tmp:
        files = ModelFiles(Path(tmp))
        for owner in gone:
            t0 = time.perf_counter()
            model = model.without(owner)
            downdates.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            files.save("items", model.arrays())
            saves.append(time.perf_counter() - t0)
            log(f"  took user {owner} out in {downdates[-1]:.2f} s, saved in {saves[-1]:.2f} s")
        file_mb = files.path("items").stat().st_size / 2**20

    log("refitting without them (the baseline)")
    kept = set(owners) - set(gone)
    t0 = time.perf_counter()
    refit = fit(item_ids, [h for h, o in zip(data, owners, strict=True) if o in kept], DEFAULT_L2,
                owners=[o for o in owners if o in kept], min_group=args.min_group)
    refit_seconds = time.perf_counter() - t0
    error = float(np.abs(model.weights - refit.weights).max())
    precision_error = float(np.abs(model.precision - refit.precision).max())
    same_pairs = bool((model.together == refit.together).all())

    downdate_p50, downdate_max = float(np.median(downdates)), max(downdates)
    save_p50 = float(np.median(saves))
    lines = [
        f"{args.items:,} items, {args.users:,} users (about {np.mean([len(h) for h in data]):.0f} items each), "
        f"{args.withdrawals} withdrawals, min_group {args.min_group}:",
        f"- full refit: {fit_seconds:.1f} s (first fit), {refit_seconds:.1f} s (refit without them)",
        f"- downdate: p50 {downdate_p50:.2f} s, max {downdate_max:.2f} s, "
        f"{refit_seconds / downdate_p50:.0f}x faster than the refit",
        f"- saving the model file after it: p50 {save_p50:.2f} s ({file_mb:.0f} MiB)",
        f"- downdated against refitted: largest difference in P {precision_error:.1e} (float64), in the float32 "
        f"weights {error:.1e}; pair counts identical: {same_pairs}",
        f"- load average at the end: {loadavg()}",
    ]
    report = "\n".join(lines)
    print(report)
    if args.write:
        RESULTS.write_text(
            "# Withdrawal from the shared item model: downdate against refit\n\n"
            f"Produced by `benchmarks/bench_withdrawal.py` (method in its docstring), {date.today()}, on "
            f"{machine(['numpy'])}, code {revision()}.\n\n```\n{command_line()}\n```\n\n{report}\n")
        log(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
