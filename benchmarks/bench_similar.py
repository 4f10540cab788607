"""Similar users at scale: ``find_similar_users`` latency and recall@10, and one realtime ``record_event``.

Run from the repository root:

    .venv/bin/python benchmarks/bench_similar.py [--users 100000,1000000] [--calls 2000] [--queries 1000]
        [--seed 7] [--write]

What is measured, per population size, in one process (the SDK's in-memory ``Client(server)``, SQLite):
  * ``find_similar_users(user_id, purpose="profiling", limit=10, min_similarity=-1)`` as the caller
    ``privacy-officer`` (allowed purpose profiling, and the writer role for record_event). The gate checks the
    user's profiling consent; the handler reads their preferences, computes their vector, asks the similarity
    index (an HNSW graph above local_index.hnsw_threshold users) for neighbours, re-checks the neighbours'
    consent, reads their preferences for the shared likes and names them at random for this response; then the
    audit entry. ``min_similarity=-1`` filters nothing, so every call returns ten neighbours.
  * Recall@10 on ``--queries`` sampled users: the tool's ten neighbours (their names mapped back by recording,
    during the recall calls only, what ``runtime.pseudonyms.for_response`` handed out: the names themselves carry
    nothing to map back from) against the exact top ten by cosine over every indexed user's stored
    vector (numpy brute force, the query user excluded). Two figures: ``recall@10`` counts returned users that
    are among the exact ten; ``tie-aware`` counts returned users whose exact cosine reaches the exact tenth
    (within 1e-6), as ann-benchmarks does: with many users of near-identical taste the exact ten are one choice
    among equals. The recall calls come first, before anything is recorded, and are timed as well.
  * ``record_event(user_id, event_type="view", item_id=<a catalog product>)`` (purpose service) for indexed
    users, realtime learning on (the default): the event is stored, folded into the user's preferences, their
    vector recomputed and stored, and the similarity index updated (a new graph node) within the call.
  * ``noop``: the no-op of ``benchmarks/bench_core_server.py``, registered on the same server after
    ``build_server`` with ``add_tool`` (same SDK path and gate middleware; it marks its call as accounted for and
    writes no audit entry). Ratios divide by its p50 and p99 from the same run.
  * After a warm-up the three tools run in rounds (one call each, the order rotating each round), one call at a
    time; latency is the client's wall time for one ``call_tool``, CPU is this process's CPU time for it.
  * Where the time goes: ``--breakdown`` more rounds with timers around the product's parts (the gate, each
    repository method's SQL, learning, the index, the audit log); each part's own time, nested parts excluded,
    averaged over all calls and over the slowest 2%. The timers cost a little themselves, so these rounds are
    not part of the latency table.
Targets at 1,000,000 users: recall@10 >= 0.95 and find_similar_users p99 under 5 ms in-process.

Data (``benchmarks/similar_population.py``): a seeded population over the demo catalog, every user consenting to
profiling, so every user is indexed. Its rows (profiles, consents, stated likes, preferences, user vectors) are
computed with the product's learning functions and bulk-written through ``store.db.run_sync`` in transactions of
a few thousand users; the generation runs in ``--jobs`` worker processes while the main process writes. The
similarity index is then built by the product: ``bootstrap`` finds it empty and runs ``IndexUpkeep.rebuild``
(reading the consenting users and their vectors, then ``LocalVectorIndex.rebuild``: graph and snapshot; the two
are timed apart, and ``--reindex`` does this step again on kept data). Kept under
``benchmarks/.data/similar-sqlite-u<users>-s<seed>/`` and reused when its ``dataset.json`` matches (``--rebuild``
starts over). Each run measures a copy (database file and index directory) that is deleted afterwards, so runs do
not see each other's events.

Timings share the machine with whatever else runs: the load average is recorded at start and end and per size.
Compare ratios from one run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import gc
import inspect
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import sqlalchemy as sa
from bench_core_server import NOOP, noop
from common import BenchError, command_line, loadavg, log, machine, milliseconds, percentile, revision
from mcp import Client
from mcp.types import ToolAnnotations
from similar_population import Rows, init_worker, make_chunk

from mnky_profiles.examples.demo import generate_catalog
from mnky_profiles.privacy.audit import AuditLog
from mnky_profiles.privacy.gate import Gate
from mnky_profiles.server.app import build_server
from mnky_profiles.server.runtime import Runtime, bootstrap, open_store, settle
from mnky_profiles.server.settings import Settings, load_settings
from mnky_profiles.store.sql import schema as t
from mnky_profiles.store.sql.database import SQLiteDatabase
from mnky_profiles.store.sql.repositories import SQLRepositories
from mnky_profiles.store.vectors.local import LocalVectorIndex
from mnky_profiles.usecases.discovery import Discovery
from mnky_profiles.usecases.events import Events
from mnky_profiles.usecases.learning import PreferenceLearner
from mnky_profiles.usecases.population import consenting_pages
from mnky_profiles.usecases.vectors import PROFILING, IndexUpkeep, UserVectors

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results" / "similar.md"

CALLER = "privacy-officer"
SIMILAR, RECORD = "find_similar_users", "record_event"
OPERATIONS = (NOOP, SIMILAR, RECORD)
USERS_PER_CHUNK = 2000
ROWS_PER_INSERT = 5000
TIE_EPSILON = 1e-6
SLOWEST = 0.02  # the breakdown also shows the slowest 2% of calls: what the tail is made of
REST = "the rest: MCP client and server, gate wrapper, result"
VERIFY_VECTORS = 50  # sampled users whose stored vector is checked against UserVectors.of
TARGET_USERS, TARGET_RECALL, TARGET_P99_MS = 1_000_000, 0.95, 5.0
TABLES = (t.profiles, t.consents, t.attributes, t.preferences, t.user_vectors, t.items)
FORMAT = 1  # of dataset.json; a change of the generator changes it


# -- the kept dataset -------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    users: int
    seed: int
    directory: Path
    settings: Settings
    meta: dict[str, Any] = field(default_factory=dict)
    reused: bool = True

    @property
    def meta_path(self) -> Path:
        return self.directory / "dataset.json"

    def save_meta(self) -> None:
        self.meta_path.write_text(json.dumps(self.meta, indent=2))

    def wanted(self) -> dict[str, Any]:
        """What the kept data must have been made with to be reused."""
        s = self.settings
        return {"format": FORMAT, "users": self.users, "seed": self.seed, "dim": s.hashing.dim,
                "half_life_days": s.learning.half_life_days,
                "local_index": s.local_index.model_dump(mode="json")}


def _insert(conn: Any, table: sa.Table, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    for i in range(0, len(rows), ROWS_PER_INSERT):
        conn.execute(table.insert(), [dict(zip(columns, r, strict=True)) for r in rows[i:i + ROWS_PER_INSERT]])


def _write_rows(rows: Rows, conn: Any) -> None:
    for name, table in (("profiles", t.profiles), ("subject_keys", t.subject_keys), ("consents", t.consents),
                        ("attributes", t.attributes), ("preferences", t.preferences),
                        ("user_vectors", t.user_vectors)):
        _insert(conn, table, Rows.COLUMNS[name], getattr(rows, "vectors" if name == "user_vectors" else name))


def _row_counts(conn: Any) -> dict[str, int]:
    return {table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in TABLES}


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


async def _generate(dataset: Dataset, jobs: int) -> None:
    """Write the population: worker processes make chunks of users, this process writes them in order."""
    store = open_store(dataset.settings)
    try:
        await store.migrate()
        async with store.write() as repo:
            await repo.put_items(generate_catalog(dataset.seed))
        now_s = int(datetime.fromisoformat(dataset.meta["now"]).timestamp())
        chunks = [(first, min(first + USERS_PER_CHUNK - 1, dataset.users))
                  for first in range(1, dataset.users + 1, USERS_PER_CHUNK)]
        totals = {"events": 0, "cold": 0}
        t0 = last_report = time.perf_counter()
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(
                jobs, mp_context=context, initializer=init_worker,
                initargs=(dataset.seed, now_s, dataset.settings.learning.half_life_days,
                          dataset.settings.hashing.dim)) as pool:
            pending: list[concurrent.futures.Future[Rows]] = []
            queue = iter(chunks)
            for chunk in (next(queue, None) for _ in range(jobs + 1)):  # a few ahead, not all at once
                if chunk is not None:
                    pending.append(pool.submit(make_chunk, *chunk))
            done = 0
            while pending:
                rows = await asyncio.wrap_future(pending.pop(0))
                chunk = next(queue, None)
                if chunk is not None:
                    pending.append(pool.submit(make_chunk, *chunk))
                await store.db.run_sync(partial(_write_rows, rows))
                totals["events"] += rows.events
                totals["cold"] += rows.cold
                done += len(rows.profiles)
                if time.perf_counter() - last_report > 30:
                    last_report = time.perf_counter()
                    log(f"  {done:,} of {dataset.users:,} users written ({last_report - t0:.0f} s, load average "
                        f"{loadavg()})")
        dataset.meta["generate_seconds"] = round(time.perf_counter() - t0, 1)
        dataset.meta["events_behind_preferences"] = totals["events"]
        dataset.meta["users_without_vector"] = totals["cold"]
    finally:
        await store.close()


async def build_index(dataset: Dataset) -> None:
    """The product builds the index: ``bootstrap`` finds it empty and runs ``IndexUpkeep.rebuild``.

    Its two steps are timed apart: reading the consenting users and their stored vectors, page by page, and
    ``LocalVectorIndex.rebuild`` (the matrix, the HNSW graph on every core, the snapshot).
    """
    settings = dataset.settings
    shutil.rmtree(settings.vector_dir, ignore_errors=True)
    log(f"{dataset.users:,} users: building the similarity index (bootstrap -> IndexUpkeep.rebuild; load average "
        f"{loadavg()})")
    graph: list[float] = []
    original = LocalVectorIndex.rebuild

    async def timed_rebuild(self: LocalVectorIndex, ids: Sequence[str], vectors: Any) -> None:
        t0 = time.perf_counter()
        try:
            await original(self, ids, vectors)
        finally:
            graph.append(time.perf_counter() - t0)

    LocalVectorIndex.rebuild = timed_rebuild  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        runtime = await bootstrap(settings)
        total = time.perf_counter() - t0
    finally:
        LocalVectorIndex.rebuild = original  # type: ignore[method-assign]
    try:
        dataset.meta["indexed"] = await runtime.index.count()
        dataset.meta["hnsw"] = isinstance(runtime.index, LocalVectorIndex) and runtime.index.uses_hnsw
    finally:
        t1 = time.perf_counter()
        await runtime.close()
        close = time.perf_counter() - t1
    dataset.meta["index_build_seconds"] = round(total + close, 1)
    dataset.meta["index_graph_seconds"] = round(sum(graph) + close, 1)
    dataset.meta["index_read_seconds"] = round(total - sum(graph), 1)
    dataset.meta["index_built"] = datetime.now(UTC).replace(microsecond=0).isoformat()
    dataset.meta["index_bytes"] = _size(settings.vector_dir)
    log(f"{dataset.users:,} users: indexed {dataset.meta['indexed']:,} in {dataset.meta['index_build_seconds']} s "
        f"(reading consenting users and vectors {dataset.meta['index_read_seconds']} s, graph and snapshot "
        f"{dataset.meta['index_graph_seconds']} s)")


async def prepare(users: int, seed: int, jobs: int, rebuild: bool, reindex: bool) -> Dataset:
    directory = DATA / f"similar-sqlite-u{users}-s{seed}"
    settings = load_settings(None, data_dir=str(directory))
    dataset = Dataset(users, seed, directory, settings)
    wanted = dataset.wanted()
    if not rebuild and dataset.meta_path.exists():
        meta = json.loads(dataset.meta_path.read_text())
        if meta.get("complete") and {k: meta.get(k) for k in wanted} == wanted:
            dataset.meta = meta
            log(f"{users:,} users: reusing {directory.relative_to(ROOT)}")
            if reindex:
                dataset.meta["complete"] = False
                dataset.save_meta()
                await build_index(dataset)
                dataset.meta["complete"] = True
                dataset.save_meta()
            return dataset
        log(f"{users:,} users: the kept data in {directory.relative_to(ROOT)} is incomplete or was made with other "
            "settings; making it again")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    dataset.reused = False
    dataset.meta = wanted | {"now": datetime.now(UTC).replace(microsecond=0).isoformat(), "jobs": jobs}
    dataset.save_meta()

    log(f"{users:,} users: generating and writing the population ({jobs} worker process(es); load average "
        f"{loadavg()})")
    await _generate(dataset, jobs)
    log(f"{users:,} users: written in {dataset.meta['generate_seconds']} s")
    await build_index(dataset)
    store = open_store(settings)
    try:
        dataset.meta["rows"] = await store.db.run_sync(_row_counts)
    finally:
        await store.close()
    dataset.meta["database_bytes"] = _size(settings.sqlite_path)
    dataset.meta["complete"] = True
    dataset.save_meta()
    return dataset


# -- the copy a run measures ------------------------------------------------------------------------------------

@dataclass
class Workspace:
    directory: Path
    settings: Settings
    copy_seconds: float


def workspace(dataset: Dataset) -> Workspace:
    directory = DATA / f"run-similar-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    t0 = time.perf_counter()
    source = dataset.settings.sqlite_path
    for suffix in ("", "-wal"):  # a cleanly closed database has no WAL left, but copy one if it is there
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", directory / f"{source.name}{suffix}")
    shutil.copytree(dataset.settings.vector_dir, directory / dataset.settings.vector_dir.name,
                    ignore=shutil.ignore_patterns("LOCK"))
    return Workspace(directory, load_settings(None, data_dir=str(directory)), time.perf_counter() - t0)


# -- exact neighbours -------------------------------------------------------------------------------------------

@dataclass
class Truth:
    ids: list[str]  # indexed users, in row order of ``matrix``
    matrix: np.ndarray  # their stored vectors (float32, unit length)
    queries: np.ndarray  # row numbers of the query users
    top: np.ndarray  # exact top ten rows per query, best first (self excluded)
    kth: np.ndarray  # the exact tenth score per query
    next: np.ndarray  # the exact eleventh score (a tie with the tenth makes the ten one choice among equals)


async def stored_vectors(runtime: Runtime) -> tuple[list[str], np.ndarray]:
    """Every indexed user's stored vector: users who consent to profiling now and have a vector of this model."""
    model = runtime.embedder.name
    ids: list[str] = []
    blobs: list[bytes] = []
    async for page in consenting_pages(runtime.store, PROFILING, runtime.clock.now()):
        async with runtime.store.read() as repo:
            stored = sorted((v for v in await repo.user_vectors(page) if v.model == model), key=lambda v: v.user_id)
        ids += [v.user_id for v in stored]
        blobs += [v.data for v in stored]
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(ids), -1).astype(np.float32)
    return ids, matrix


def exact_top(matrix: np.ndarray, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    top = np.empty((len(queries), k), dtype=np.int64)
    kth, nxt = np.empty(len(queries)), np.empty(len(queries))
    for s in range(0, len(queries), 100):
        rows = queries[s:s + 100]
        scores = matrix[rows] @ matrix.T
        scores[np.arange(len(rows)), rows] = -np.inf  # not one's own neighbour
        part = np.argpartition(-scores, k, axis=1)[:, :k + 1]
        for r in range(len(rows)):
            order = part[r][np.argsort(-scores[r, part[r]], kind="stable")]
            top[s + r] = order[:k]
            kth[s + r], nxt[s + r] = scores[r, order[k - 1]], scores[r, order[k]]
    return top, kth, nxt


# -- timers for the breakdown -----------------------------------------------------------------------------------

class GcWatch:
    """Pauses of Python's garbage collector, by generation; a ``Breakdown`` gets each pause as a part of its own."""

    GC = "Python's garbage collector"

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0, 0, 0]  # ns
        self.longest = [0, 0, 0]
        self.breakdown: Breakdown | None = None
        self._t0 = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
            return
        pause, g = time.perf_counter_ns() - self._t0, info["generation"]
        self.count[g] += 1
        self.total[g] += pause
        self.longest[g] = max(self.longest[g], pause)
        if self.breakdown is not None:
            self.breakdown.add(self.GC, pause)

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)

    def text(self) -> str:
        young = self.count[0] + self.count[1]
        return (f"{self.count[2]} full collection(s) (generation 2) taking {self.total[2] / 1e6:.1f} ms in all, the "
                f"longest {self.longest[2] / 1e6:.1f} ms; {young} younger ones taking "
                f"{(self.total[0] + self.total[1]) / 1e6:.1f} ms in all")


class Breakdown:
    """Own time per labelled part of a call (time in nested labelled parts is theirs, not the parent's)."""

    def __init__(self) -> None:
        self.stack: list[int] = []
        self.current: dict[str, int] = defaultdict(int)
        self.calls: dict[str, list[tuple[int, dict[str, int]]]] = defaultdict(list)  # (wall, own time by part)
        self._undo: list[Callable[[], None]] = []

    def _enter(self) -> int:
        self.stack.append(0)
        return time.perf_counter_ns()

    def _leave(self, label: str, t0: int) -> None:
        elapsed = time.perf_counter_ns() - t0
        nested = self.stack.pop()
        self.current[label] += elapsed - nested
        if self.stack:
            self.stack[-1] += elapsed

    def add(self, label: str, ns: int) -> None:
        """Time spent inside whatever part is running, that is not that part's own (a collector pause)."""
        self.current[label] += ns
        if self.stack:
            self.stack[-1] += ns

    def wrap(self, owner: type, name: str, label: str) -> None:
        original = owner.__dict__[name]
        me = self
        if inspect.iscoroutinefunction(original):
            async def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = me._enter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    me._leave(label, t0)
        else:
            def timed(*args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
                t0 = me._enter()
                try:
                    return original(*args, **kwargs)
                finally:
                    me._leave(label, t0)
        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def wrap_transactions(self, owner: type, name: str, label: str) -> None:
        """Time a transaction's begin and end (commit or rollback), not its body."""
        original = owner.__dict__[name]
        me = self

        class Timed:
            def __init__(self, cm: Any) -> None:
                self.cm = cm

            async def __aenter__(self) -> Any:
                t0 = me._enter()
                try:
                    return await self.cm.__aenter__()
                finally:
                    me._leave(label, t0)

            async def __aexit__(self, *exc: Any) -> Any:
                t0 = me._enter()
                try:
                    return await self.cm.__aexit__(*exc)
                finally:
                    me._leave(label, t0)

        def timed(*args: Any, **kwargs: Any) -> Any:
            return Timed(original(*args, **kwargs))

        setattr(owner, name, timed)
        self._undo.append(lambda: setattr(owner, name, original))

    def install(self) -> None:
        self.wrap_transactions(SQLiteDatabase, "read", "SQLite: begin and end of read transactions")
        self.wrap_transactions(SQLiteDatabase, "write", "SQLite: begin and commit of write transactions")
        for name, fn in list(SQLRepositories.__dict__.items()):
            if not name.startswith("_") and inspect.iscoroutinefunction(fn):
                self.wrap(SQLRepositories, name, f"SQL: SQLRepositories.{name}")
        self.wrap(Gate, "open", "gate: open (role, purpose, consent)")
        self.wrap(Gate, "release", "gate: release (field by field)")
        self.wrap(AuditLog, "append", "audit entry (hash-chained write)")
        self.wrap(Discovery, "similar", "use case: the rest of Discovery.similar")
        self.wrap(Events, "record", "use case: the rest of Events.record")
        self.wrap(UserVectors, "of", "learning: UserVectors.of")
        self.wrap(PreferenceLearner, "apply", "learning: fold the signals (PreferenceLearner.apply)")
        self.wrap(IndexUpkeep, "refresh", "learning: the rest of IndexUpkeep.refresh")
        self.wrap(LocalVectorIndex, "query", "index: query (HNSW search, rescoring)")
        self.wrap(LocalVectorIndex, "upsert", "index: upsert (graph insert, journal)")
        self.wrap(LocalVectorIndex, "delete", "index: delete")

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def record(self, op: str, wall_ns: int) -> None:
        self.calls[op].append((wall_ns, dict(self.current)))
        self.current.clear()

    def parts(self, op: str, slowest: float | None = None) -> tuple[int, float, dict[str, float]]:
        """Calls averaged over, their mean wall time and each part's mean own time (ms); the part not timed is
        ``REST``. ``slowest``: only that share of the calls, the slowest by wall time."""
        calls = sorted(self.calls[op], key=lambda c: c[0])
        if slowest is not None:
            calls = calls[-max(1, round(len(calls) * slowest)):]
        if not calls:
            return 0, 0.0, {}
        n = len(calls)
        parts: dict[str, float] = defaultdict(float)
        for _, own in calls:
            for label, ns in own.items():
                parts[label] += ns / n / 1e6
        wall = sum(c[0] for c in calls) / n / 1e6
        parts[REST] = wall - sum(parts.values())
        return n, wall, dict(parts)


# -- measuring --------------------------------------------------------------------------------------------------

@dataclass
class Result:
    users: int
    wall: dict[str, list[int]]
    cpu: dict[str, list[int]]
    recall_wall: list[int]
    recall: float
    tie_recall: float
    tied_queries: int
    short_answers: int
    queries: int
    indexed: int
    open_seconds: float
    truth_seconds: float
    copy_seconds: float
    load_start: str
    load_end: str = ""
    collector: str = ""  # the garbage collector's pauses during the measured rounds
    breakdown: Breakdown | None = None
    dataset: Dataset | None = None


def _check(op: str, result: Any) -> dict[str, Any]:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise BenchError(f"{op} failed: {text}")
    out: dict[str, Any] = result.structured_content or {}
    if op == NOOP and out != {"ok": True}:
        raise BenchError(f"the no-op returned {out}")
    if op == RECORD and out.get("learning") != "applied":
        raise BenchError(f"record_event did not learn within the call: {out}")
    if op == SIMILAR and "neighbours" not in out:
        raise BenchError(f"find_similar_users released no neighbours: {out}")
    return out


async def verify_vectors(runtime: Runtime, truth: Truth, count: int) -> None:
    """The stored vectors are what the product computes: UserVectors.of on the stored preferences, bit for bit."""
    vectors = runtime.usecases.discovery.vectors
    async with runtime.store.read() as repo:
        for row in truth.queries[:count]:
            state = await vectors.of(await repo.preferences(truth.ids[row]))
            if state is None or state.vector.tobytes() != truth.matrix[row].tobytes():
                raise BenchError(f"the stored vector of {truth.ids[row]} differs from UserVectors.of")


async def measure(dataset: Dataset, args: argparse.Namespace) -> Result:
    load_start = loadavg()
    ws = workspace(dataset)
    log(f"{dataset.users:,} users: copied the dataset in {ws.copy_seconds:.0f} s; opening (load average {load_start})")
    try:
        t0 = time.perf_counter()
        runtime = await bootstrap(ws.settings)
        open_seconds = time.perf_counter() - t0
        try:
            t0 = time.perf_counter()
            ids, matrix = await stored_vectors(runtime)
            indexed = await runtime.index.count()
            if indexed != len(ids):
                raise BenchError(f"the index holds {indexed} users, {len(ids)} consent and have a vector")
            rng = np.random.default_rng(args.seed)
            picked = rng.choice(len(ids), size=min(args.queries + args.pool, len(ids)), replace=False)
            queries, writers = picked[:args.queries], picked[args.queries:]
            top, kth, nxt = exact_top(matrix, queries)
            truth = Truth(ids, matrix, queries, top, kth, nxt)
            row_of = {u: i for i, u in enumerate(ids)}
            truth_seconds = time.perf_counter() - t0
            log(f"{dataset.users:,} users: opened in {open_seconds:.1f} s; exact neighbours of {len(queries)} users "
                f"in {truth_seconds:.1f} s")
            await verify_vectors(runtime, truth, VERIFY_VECTORS)

            server = build_server(runtime, caller_from="local", local_caller=CALLER)

            settle()  # as `mnky-profiles serve` does after start-up
            server.add_tool(noop, name=NOOP, title="No-op", description="Does nothing (benchmark baseline).",
                            structured_output=True, annotations=ToolAnnotations(
                                title="No-op", read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                open_world_hint=False))
            catalog = await runtime.usecases.discovery.catalog.get()
            products = sorted(i for i, item in catalog.items.items() if item.kind == "product")
            readers = [ids[r] for r in queries]
            writer_ids = [ids[r] for r in writers] or readers
            call_rng = random.Random(f"calls/{args.seed}")

            def arguments(op: str, n: int) -> dict[str, Any]:
                if op == RECORD:
                    return {"user_id": writer_ids[n % len(writer_ids)], "event_type": "view",
                            "item_id": call_rng.choice(products)}
                user = readers[n % len(readers)]
                if op == NOOP:
                    return {"user_id": user, "purpose": PROFILING}
                return {"user_id": user, "purpose": PROFILING, "limit": 10, "min_similarity": -1.0}

            async with Client(server, mode=args.mode) as client:
                await client.list_tools()  # the client checks structured results against the output schemas
                # Recall, before anything is recorded: the stored vectors are the truth. The names each response
                # hands out are recorded as they are made, for these calls only.
                by_pseudonym: dict[str, str] = {}
                naming = runtime.pseudonyms.for_response

                def recorded(user_ids: Sequence[str]) -> dict[str, str]:
                    names = naming(user_ids)
                    by_pseudonym.update({p: u for u, p in names.items()})
                    return names

                runtime.pseudonyms.for_response = recorded  # type: ignore[method-assign]
                recall_wall: list[int] = []
                hits = tie_hits = tied = short = 0
                for qi, row in enumerate(queries):
                    t0n = time.perf_counter_ns()
                    result = await client.call_tool(SIMILAR, arguments(SIMILAR, qi))
                    recall_wall.append(time.perf_counter_ns() - t0n)
                    out = _check(SIMILAR, result)
                    got = [row_of[by_pseudonym[n["pseudonym"]]] for n in out["neighbours"]]
                    short += len(got) < 10
                    hits += len(set(got) & set(top[qi].tolist()))
                    exact = matrix[got] @ matrix[row] if got else np.zeros(0)
                    tie_hits += int(np.sum(exact >= kth[qi] - TIE_EPSILON))
                    tied += bool(nxt[qi] >= kth[qi] - TIE_EPSILON)
                runtime.pseudonyms.for_response = naming  # type: ignore[method-assign]
                log(f"{dataset.users:,} users: recall@10 {hits / (10 * len(queries)):.4f}, tie-aware "
                    f"{tie_hits / (10 * len(queries)):.4f} ({tied} of {len(queries)} queries have a tie at the tenth)")
                # The truth's millions of objects are this benchmark's, not the server's: gone before timing, so the
                # garbage collector walks only what a server would hold.
                del truth, row_of, ids, matrix
                by_pseudonym.clear()
                gc.collect()

                wall: dict[str, list[int]] = {op: [] for op in OPERATIONS}
                cpu: dict[str, list[int]] = {op: [] for op in OPERATIONS}
                log(f"{dataset.users:,} users: {args.warmup} warm-up and {args.calls} measured rounds (load average "
                    f"{loadavg()})")

                async def rounds(count: int, start: int, keep: bool, breakdown: Breakdown | None = None) -> None:
                    for n in range(start, start + count):
                        k = n % len(OPERATIONS)
                        for op in (*OPERATIONS[k:], *OPERATIONS[:k]):
                            a = arguments(op, n)
                            c0, w0 = time.process_time_ns(), time.perf_counter_ns()
                            result = await client.call_tool(op, a)
                            w1, c1 = time.perf_counter_ns(), time.process_time_ns()
                            if result.is_error or n < start + 3:
                                _check(op, result)
                            if breakdown is not None:
                                breakdown.record(op, w1 - w0)
                            if keep:
                                wall[op].append(w1 - w0)
                                cpu[op].append(c1 - c0)

                await rounds(args.warmup, 0, keep=False)
                with GcWatch() as gc_watch:
                    await rounds(args.calls, args.warmup, keep=True)
                breakdown = None
                if args.breakdown:
                    breakdown = Breakdown()
                    breakdown.install()
                    try:
                        with GcWatch() as watch:
                            watch.breakdown = breakdown
                            await rounds(args.breakdown, args.warmup + args.calls, keep=False, breakdown=breakdown)
                    finally:
                        breakdown.uninstall()
        finally:
            await runtime.close()
    finally:
        shutil.rmtree(ws.directory, ignore_errors=True)
    return Result(dataset.users, wall, cpu, recall_wall, hits / (10 * len(queries)),
                  tie_hits / (10 * len(queries)), tied, short, len(queries), indexed, open_seconds, truth_seconds,
                  ws.copy_seconds, load_start, loadavg(), gc_watch.text(), breakdown, dataset)


# -- reporting --------------------------------------------------------------------------------------------------

def table(results: Sequence[Result]) -> str:
    lines = ["| users | operation | calls | p50 ms | p99 ms | mean ms | p50 / no-op p50 | p99 / no-op p99 "
             "| CPU p50 ms | recall@10 | recall@10, tie-aware |",
             "|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in results:
        base50, base99 = percentile(r.wall[NOOP], 50), percentile(r.wall[NOOP], 99)
        for op in OPERATIONS:
            w = r.wall[op]
            p50, p99 = percentile(w, 50), percentile(w, 99)
            recall = (f"{r.recall:.4f}", f"{r.tie_recall:.4f}") if op == SIMILAR else ("", "")
            lines.append(f"| {r.users:,} | {op} | {len(w)} | {p50:.3f} | {p99:.3f} | {milliseconds(w).mean():.3f} "
                         f"| {p50 / base50:.2f}x | {p99 / base99:.2f}x | {percentile(r.cpu[op], 50):.3f} "
                         f"| {recall[0]} | {recall[1]} |")
    return "\n".join(lines)


def verdicts(results: Sequence[Result]) -> list[str]:
    out = []
    for r in results:
        p99 = percentile(r.wall[SIMILAR], 99)
        line = (f"{r.users:,} users: recall@10 {r.recall:.4f} (tie-aware {r.tie_recall:.4f}; {r.tied_queries} of "
                f"{r.queries} queries tie at the tenth neighbour), find_similar_users p99 {p99:.2f} ms "
                f"(p50 {percentile(r.wall[SIMILAR], 50):.2f} ms); during the recall pass, before any event was "
                "recorded, "
                f"p50 {percentile(r.recall_wall, 50):.2f} ms and p99 {percentile(r.recall_wall, 99):.2f} ms")
        if r.short_answers:
            line += f"; {r.short_answers} answers held fewer than ten neighbours"
        if r.collector:
            line += f"; Python's garbage collector in the measured rounds: {r.collector}"
        if r.users >= TARGET_USERS:
            recall_met = "met" if r.recall >= TARGET_RECALL else (
                "met only counting ties" if r.tie_recall >= TARGET_RECALL else "missed")
            line += (f". Targets: recall@10 >= {TARGET_RECALL}: {recall_met}; p99 under {TARGET_P99_MS:.0f} ms: "
                     f"{'met' if p99 < TARGET_P99_MS else 'missed'}")
        out.append(line + ".")
    return out


def breakdown_table(results: Sequence[Result]) -> str:
    tables: list[str] = []
    for r in results:
        b = r.breakdown
        if b is None:
            continue
        ops = [op for op in (SIMILAR, RECORD) if b.calls[op]]
        views = [(op, b.parts(op)) for op in ops] + [(op, b.parts(op, SLOWEST)) for op in ops]
        labels = sorted({label for _, (_, _, parts) in views for label in parts} - {REST},
                        key=lambda lb: -max(parts.get(lb, 0.0) for _, (_, _, parts) in views))
        _, noop_wall, _ = b.parts(NOOP)
        lines = [f"{r.users:,} users, {len(b.calls[ops[0]])} rounds (no-op: {noop_wall:.3f} ms a call on average):",
                 "",
                 "| part (own time, mean per call) | " + " | ".join(
                     f"{op}, all calls | share" for op in ops) + " | " + " | ".join(
                     f"{op}, slowest {SLOWEST:.0%} | share" for op in ops) + " |",
                 "|---|" + "--:|--:|" * len(views)]
        for label in [*labels, REST]:
            values = [parts.get(label, 0.0) for _, (_, _, parts) in views]
            if max(values) >= 0.0005:
                cells = " | ".join(f"{v:.3f} | {v / wall:.0%}" for v, (_, (_, wall, _)) in zip(values, views,
                                                                                              strict=True))
                lines.append(f"| {label} | {cells} |")
        cells = " | ".join(f"**{wall:.3f}** | {n} calls" for _, (n, wall, _) in views)
        lines.append(f"| **the call (client wall time)** | {cells} |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)


def breakdown_summary(results: Sequence[Result]) -> list[str]:
    """Per size and tool: the call's mean, all SQL together, and the three largest parts; the same for the tail."""
    out = []
    for r in results:
        b = r.breakdown
        if b is None:
            continue
        for op in (SIMILAR, RECORD):
            if not b.calls[op]:
                continue
            texts = []
            for which, slowest in (("on average", None), (f"in the slowest {SLOWEST:.0%}", SLOWEST)):
                _, wall, parts = b.parts(op, slowest)
                sql = sum(v for label, v in parts.items() if label.startswith("SQL: "))
                largest = sorted(parts.items(), key=lambda kv: -kv[1])[:3]
                texts.append(f"{wall:.2f} ms a call {which}, SQL statements together {sql:.2f} ms "
                             f"({sql / wall:.0%}), largest parts " + ", ".join(
                                 f"{label} {v:.2f} ms ({v / wall:.0%})" for label, v in largest))
            out.append(f"{r.users:,} users, {op}: " + "; ".join(texts) + ".")
    return out


def data_table(results: Sequence[Result]) -> str:
    lines = ["| users | indexed | preferences | consents | likes/dislikes rows | events behind the preferences "
             "| database | index files | generated and written | index built (bootstrap: IndexUpkeep.rebuild) "
             "| of which reading consenting users and vectors | of which graph and snapshot "
             "| run: copy, open, exact neighbours |",
             "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]

    def seconds(value: Any) -> str:
        return f"{value:.0f} s" if isinstance(value, int | float) else "?"

    for r in results:
        d = r.dataset
        assert d is not None
        m, rows = d.meta, d.meta["rows"]
        lines.append(
            f"| {r.users:,} | {r.indexed:,} | {rows['preferences']:,} | {rows['consents']:,} "
            f"| {rows['attributes']:,} | {m['events_behind_preferences']:,} | {m['database_bytes'] / 2**20:,.0f} MiB "
            f"| {m['index_bytes'] / 2**20:,.0f} MiB | {seconds(m['generate_seconds'])} ({m['jobs']} worker(s)) "
            f"| {seconds(m.get('index_build_seconds'))} | {seconds(m.get('index_read_seconds'))} "
            f"| {seconds(m.get('index_graph_seconds'))} "
            f"| {r.copy_seconds:.0f} s, {r.open_seconds:.1f} s, {r.truth_seconds:.0f} s |")
    return "\n".join(lines)


def described_machine() -> str:
    import usearch

    return machine(("mcp", "SQLAlchemy", "numpy"), f"SQLite {sqlite3.sqlite_version}", f"usearch {usearch.__version__}")


def report(args: argparse.Namespace, command: str, started: datetime, load: tuple[str, str], code: tuple[str, str],
           results: Sequence[Result]) -> str:
    revision_text = code[0] if code[0] == code[1] else f"{code[0]} at start, {code[1]} at end"
    s = results[0].dataset.settings if results and results[0].dataset else load_settings(None)
    li = s.local_index
    per_size = "; ".join(f"{r.users:,} users: {r.load_start} at start, {r.load_end} at end" for r in results)
    return "\n".join([
        "# Similar users at scale: find_similar_users and realtime record_event against a no-op",
        "",
        "Produced by `benchmarks/bench_similar.py` (method, data and options in its docstring):",
        "",
        "```",
        command,
        "```",
        "",
        f"- Date: {started.isoformat(timespec='seconds')}; code: {revision_text}.",
        f"- Machine: {described_machine()}.",
        f"- Load average (1/5/15 min): {load[0]} at start, {load[1]} at end ({per_size}). The machine was shared "
        "with other work: wall times include waiting for a core, CPU times do not.",
        f"- Settings: the packaged defaults; SQLite; local index with HNSW above {li.hnsw_threshold:,} users "
        f"(connectivity {li.connectivity}, expansion_add {li.expansion_add}, expansion_search "
        f"{li.expansion_search}), hashing embedder ({s.hashing.dim} dimensions), realtime learning, half-life "
        f"{s.learning.half_life_days:g} days.",
        "",
        "## Results",
        "",
        table(results),
        "",
        *[f"- {v}" for v in verdicts(results)],
        "",
        "How to read it: latency is the client's wall time for one `call_tool` through the SDK's in-memory "
        f"`Client(server)` (mode {args.mode}), one call at a time, after {args.warmup} warm-up rounds; each round "
        "calls each tool once, the order rotating, and the ratios divide by the no-op's p50 and p99 from the same "
        "run. CPU p50 is this process's CPU time per call (client and server, SQLite included). The caller is "
        f"`{CALLER}`. `find_similar_users` asks with purpose profiling, limit 10 and min_similarity -1 for "
        f"{args.queries} sampled users (round-robin); `record_event` records a `view` of a random product by "
        f"one of {args.pool} other indexed users, learning in realtime (preferences, stored vector and a new "
        "graph node within the call). Both write a hash-chained audit entry; the no-op does not. Recall@10 "
        f"is over the same {args.queries} users, called before any event was recorded, against the exact top "
        "ten by cosine over all indexed users' stored vectors (the query user excluded); the tie-aware figure "
        f"counts a returned user whose exact cosine reaches the exact tenth (within {TIE_EPSILON:g}).",
        "",
        "## Where the time goes",
        "",
        f"{args.breakdown} further rounds with timers around the product's parts: the own time of each part "
        "(nested timed parts excluded; `SQL: ...` is one repository method, statement and row decoding), "
        f"averaged over all calls and over the slowest {SLOWEST:.0%} of them, and its share of the call. The "
        "timers add a little; these rounds are not in the table above.",
        "",
        *[f"- {line}" for line in breakdown_summary(results)],
        "",
        breakdown_table(results) if args.breakdown else "(not measured: --breakdown 0)",
        "",
        "## Data",
        "",
        "A seeded population over the demo catalog (`benchmarks/similar_population.py`, seed "
        f"{args.seed}): each user has a latent taste from the demo's taste model and a handful of events drawn "
        "from it (preferences folded from them with `signals_for` and `fold`), some have stated likes and "
        "dislikes (explicit weights as `PreferenceLearner.on_statement` makes them), vectors as `UserVectors.of` "
        f"computes them (checked bit for bit on {VERIFY_VECTORS} users each run); every user consents to "
        "profiling, so every user with a vector is indexed. The events themselves are not stored (the measured "
        "tools do not read them); the events table holds only what the run records. The index was built by the "
        "product: `bootstrap` found it empty and ran `IndexUpkeep.rebuild`, which reads the consenting users "
        "and their stored vectors page by page and then builds the matrix, the HNSW graph and the snapshot "
        "(`LocalVectorIndex.rebuild`); the two steps are timed apart. Each run measures a copy, deleted "
        "afterwards.",
        "",
        data_table(results),
        "",
        *[f"{r.users:,} users: generated for {r.dataset.meta['now']}, index built "
          f"{r.dataset.meta.get('index_built', '?')}; kept in `{r.dataset.directory.relative_to(ROOT)}`"
          f"{', reused by this run' if r.dataset.reused else ''}." for r in results if r.dataset],
        "",
    ])


# -- main -------------------------------------------------------------------------------------------------------

def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v.replace("_", "")) for v in value.split(",") if v.strip()]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("give population sizes of at least 100, comma-separated")
    return sizes


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=_sizes, default=[100_000, 1_000_000],
                   help="population sizes, comma-separated (default 100000,1000000)")
    p.add_argument("--seed", type=int, default=7, help="population seed (default 7)")
    p.add_argument("--calls", type=int, default=2000, help="measured rounds (default 2000)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up rounds (default a tenth of --calls, at least 20)")
    p.add_argument("--queries", type=int, default=1000,
                   help="users whose neighbours are checked for recall, and find_similar_users asks about "
                        "(default 1000)")
    p.add_argument("--pool", type=int, default=1000, help="other users who record events (default 1000)")
    p.add_argument("--breakdown", type=int, default=1000,
                   help="instrumented rounds for where the time goes (default 1000; 0 skips them)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes generating the population while this one writes it (default 1)")
    p.add_argument("--mode", default="auto", choices=["auto", "legacy"],
                   help="the SDK client's protocol mode (default auto: the 2026-07-28 protocol)")
    p.add_argument("--rebuild", action="store_true", help="make the kept datasets again")
    p.add_argument("--reindex", action="store_true",
                   help="build the similarity index of the kept datasets again (the population stays)")
    p.add_argument("--drop-data", action="store_true", help="delete the kept datasets after the run")
    p.add_argument("--write", action="store_true", help=f"write the report to {RESULTS.relative_to(ROOT)}")
    return p


async def main_async(args: argparse.Namespace, results: list[Result]) -> None:
    for users in args.users:
        dataset = await prepare(users, args.seed, args.jobs, args.rebuild, args.reindex)
        try:
            result = await measure(dataset, args)
        finally:
            if args.drop_data:
                shutil.rmtree(dataset.directory, ignore_errors=True)
        results.append(result)
        log(table([result]) + "\n" + "\n".join(verdicts([result])) + f"\n(load average {result.load_end})")


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if min(args.calls, args.queries, args.pool, args.jobs) < 1 or args.breakdown < 0:
        parser().error("--calls, --queries, --pool and --jobs must be positive, --breakdown not negative")
    if max(args.users) <= args.queries:
        parser().error("--queries must be smaller than the population")
    args.warmup = args.warmup if args.warmup is not None else max(20, args.calls // 10)
    command, started, load_start, code_start = command_line(), datetime.now(UTC), loadavg(), revision()
    log(f"{described_machine()}\nload average at start: {load_start}")
    results: list[Result] = []
    try:
        anyio.run(main_async, args, results)
    except BenchError as exc:
        log(f"bench_similar: {exc}")
        return 1
    out = report(args, command, started, (load_start, loadavg()), (code_start, revision()), results)
    print(out)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(out)
        log(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
