"""Core call latency: gated ``get_profile`` and ``record_event`` against a no-op tool on the same server.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, trust auth, for the postgresql rows):

    .venv/bin/python benchmarks/bench_core.py [--users 100000] [--databases sqlite,postgresql]
        [--transports inprocess,stdio] [--calls 2000,500] [--write]

What is measured
  * Four tools of one server, through one MCP client session: ``noop``, ``profile_replay``, ``get_profile`` and
    ``record_event``. The two baselines (``benchmarks/bench_core_server.py``) are registered on the server that
    ``build_server`` returns, after the gated tools, with ``server.add_tool``: the same SDK path (argument
    validation against the same argument types, result conversion, the client's output-schema check, the gate's
    middleware). ``noop`` does no work and returns ``{"ok": true}``. ``profile_replay`` returns one real
    ``get_profile`` result, recorded on its first call, every time: what carrying a result of that size and
    output schema costs in the SDK and the client, without the product's work. Both mark their call as
    accounted for, so the fail-closed middleware lets them through without an audit entry; the gated tools
    write theirs, and that is part of their cost.
  * ``get_profile(user_id, purpose="personalization")`` as the caller ``shopping-assistant``, for users who
    granted personalization: the gate checks consent, the handler reads the user's attributes and recent
    events, the gate releases the result field by field and appends a hash-chained audit entry.
  * ``record_event(user_id, event_type="view", item_id=<a catalog product>)``, purpose service: the event is
    validated, its basis checked (the user granted personalization, which views are collected for) and stored,
    and realtime learning (``update_frequency: realtime``, the default) folds it into the
    user's preferences, recomputes their vector and updates the similarity index within the call; then the
    audit entry. All of that is in the number.
  * Transports: ``inprocess`` is the SDK's in-memory ``Client(server)`` in this process (default mode "auto",
    which negotiates the 2026-07-28 protocol and dispatches without JSON-RPC framing); ``stdio`` starts
    ``benchmarks/bench_core_server.py`` as a subprocess (the product's server plus the same baselines) and drives
    it with the SDK client over ``StdioServerParameters``.
  * Latency is the client's wall time for one ``call_tool``, one call at a time. After a warm-up, the operations
    run in rounds (one call of each; the order rotates each round) so drift in machine load touches all alike.
    Reported: p50, p99, mean, and each operation's p50 and p99 over the no-op's p50 and p99 from the same run.
    Target: gated get_profile p50 within 2x the no-op's in-process.

Data
  The demo population (``examples.demo.load_demo``) of ``--users`` users and ``--seed``. ``load_demo`` writes the
  histories as rows, around the learning path, so ``LearningRuns.relearn`` then folds them into preferences, user
  vectors and the similarity index (an HNSW graph above local_index.hnsw_threshold users), as if the server
  had recorded them live, and the shared item model is fitted (a server without one fits it as it starts, which
  would run beside the measured calls). These steps run once per database and are kept: SQLite, the index and
  the model under ``benchmarks/.data/sqlite-u<users>-s<seed>/``; PostgreSQL in the database
  ``bench_core_u<users>_s<seed>`` on the server of ``--postgres-url``, its index and model under
  ``benchmarks/.data/postgresql-u<users>-s<seed>/``. A kept dataset
  is reused when it holds exactly ``--users`` profiles (a row count check) and its ``dataset.json`` records the
  relearn and the fit; otherwise what is missing is done (``load_demo`` skips users already stored). ``--reload`` starts
  over, ``--drop-data`` deletes the kept datasets after the run. Each run measures a copy (SQLite: a backup of
  the file; PostgreSQL: ``CREATE DATABASE ... TEMPLATE``; the index directory copied) that is deleted afterwards,
  so runs do not see each other's events, preferences or audit entries.

Timings share the machine with whatever else runs: the load average is printed at start and end, and in-process
rows also give this process's CPU time per call, which waiting for a core does not inflate. Compare ratios from
one run, not absolute numbers across machines. ``--profile PATH`` writes cProfile stats of the in-process rounds.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import sqlalchemy as sa
import yaml
from bench_core_server import NOOP, REPLAY, add_baselines
from common import BenchError, command_line, loadavg, log, machine, milliseconds, revision
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mnky_profiles.examples.demo import load_demo
from mnky_profiles.server.app import build_server
from mnky_profiles.server.runtime import bootstrap, open_store, settle
from mnky_profiles.server.settings import DEFAULT_CONFIG, ENV_PREFIX, Settings, load_settings
from mnky_profiles.store.sql import schema as t
from mnky_profiles.store.sql.store import SQLStore

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results" / "core.md"
LAUNCHER = HERE / "bench_core_server.py"

CALLER = "shopping-assistant"
READ_PURPOSE = "personalization"
OPERATIONS = (NOOP, REPLAY, "get_profile", "record_event")
DATABASES = ("sqlite", "postgresql")
TRANSPORTS = ("inprocess", "stdio")
DEFAULT_CALLS = {"inprocess": 2000, "stdio": 500}
DEFAULT_POSTGRES = os.environ.get("MNKY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COUNTED = (t.profiles, t.attributes, t.events, t.consents, t.items, t.preferences, t.user_vectors)


# -- datasets ---------------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    database: str
    users: int
    seed: int
    where: str  # the SQLite file or the PostgreSQL database that is kept
    directory: Path  # its data_dir: the SQLite file, the similarity index, dataset.json
    settings: Settings
    meta: dict[str, Any] = field(default_factory=dict)  # dataset.json: demo_now, load and relearn times
    rows: dict[str, int] = field(default_factory=dict)
    indexed: int = 0  # users in the similarity index
    size_bytes: int = 0
    reused: bool = True

    @property
    def meta_path(self) -> Path:
        return self.directory / "dataset.json"

    def save_meta(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.meta_path.write_text(json.dumps(self.meta, indent=2))


async def _row_counts(store: SQLStore) -> dict[str, int]:
    def count(conn: Any) -> dict[str, int]:
        return {table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in COUNTED}
    return await store.db.run_sync(count)


async def _fill(dataset: Dataset) -> None:
    """Load the demo unless the kept data holds exactly the requested population, then learn from it.

    ``load_demo`` writes the histories as rows, around the learning path; ``LearningRuns.relearn`` (what the product
    provides for data that arrived that way) folds them into preferences, vectors and the similarity index, so
    the measured server starts in the state a server that had recorded these events live would be in.
    """
    if dataset.meta_path.exists():
        dataset.meta = json.loads(dataset.meta_path.read_text())
    store = open_store(dataset.settings)
    try:
        await store.migrate()
        present = (await _row_counts(store))["profiles"]
        if present != dataset.users:
            if present > dataset.users:
                raise BenchError(f"{dataset.where} holds {present} profiles, more than --users {dataset.users}; "
                                 "use --reload")
            if "demo_now" not in dataset.meta or present == 0:
                dataset.meta = {"users": dataset.users, "seed": dataset.seed,
                                "demo_now": datetime.now(UTC).replace(microsecond=0).isoformat()}
            dataset.meta.pop("relearned_users", None)
            dataset.save_meta()  # before loading, so an interrupted load resumes with the same ``now``
            dataset.reused = False
            log(f"{dataset.database}: loading the demo into {dataset.where} ({present} of {dataset.users} users "
                "present); about 2 minutes at 100,000 users")
            t0 = time.perf_counter()
            summary = await load_demo(store, users=dataset.users, seed=dataset.seed,
                                      now=datetime.fromisoformat(dataset.meta["demo_now"]))
            dataset.meta["load_seconds"] = round(time.perf_counter() - t0)
            dataset.save_meta()
            log(f"{dataset.database}: loaded in {dataset.meta['load_seconds']} s: {summary}")
    finally:
        await store.close()
    if "relearned_users" not in dataset.meta or "fitted_users" not in dataset.meta:
        dataset.reused = False
        runtime = await bootstrap(dataset.settings)
        try:
            usecases = runtime.usecases
            if "relearned_users" not in dataset.meta:
                log(f"{dataset.database}: learning from the loaded events (LearningRuns.relearn); about 10 minutes at "
                    "100,000 users")
                t0 = time.perf_counter()
                dataset.meta["relearned_users"] = await usecases.learning.relearn()
                dataset.meta["relearn_seconds"] = round(time.perf_counter() - t0)
                dataset.meta.pop("fitted_users", None)
                dataset.save_meta()
                log(f"{dataset.database}: relearned {dataset.meta['relearned_users']} users in "
                    f"{dataset.meta['relearn_seconds']} s")
            # A server without a fitted item model fits one as soon as it starts (LearningRuns.maintain); fitted
            # here, the measured servers find it and their periodic refit stays an interval away.
            t0 = time.perf_counter()
            dataset.meta["fitted_users"] = (await usecases.model.fit()).users
            dataset.meta["fit_seconds"] = round(time.perf_counter() - t0)
            dataset.save_meta()
        finally:
            await runtime.close()
    if dataset.reused:
        log(f"{dataset.database}: reusing {dataset.where} ({dataset.users} profiles, learned)")
    store = open_store(dataset.settings)
    try:
        dataset.rows = await _row_counts(store)
    finally:
        await store.close()
    if dataset.rows["profiles"] != dataset.users:
        raise BenchError(f"{dataset.where} holds {dataset.rows['profiles']} profiles after loading")
    snapshot = dataset.settings.vector_dir / "snapshot.json"
    dataset.indexed = int(json.loads(snapshot.read_text()).get("count", 0)) if snapshot.exists() else 0


def dataset_dir(database: str, users: int, seed: int) -> Path:
    return DATA / f"{database}-u{users}-s{seed}"


async def sqlite_dataset(users: int, seed: int, reload: bool) -> Dataset:
    directory = dataset_dir("sqlite", users, seed)
    if reload:
        shutil.rmtree(directory, ignore_errors=True)
    settings = load_settings(None, data_dir=str(directory))
    dataset = Dataset("sqlite", users, seed, str(settings.sqlite_path.relative_to(ROOT)), directory, settings)
    await _fill(dataset)
    dataset.size_bytes = settings.sqlite_path.stat().st_size
    return dataset


def _pg_url(base: str, database: str) -> str:
    head, _, tail = base.partition("://")
    authority, _, _ = tail.partition("/")
    return f"{head}://{authority}/{database}"


async def _pg_admin(base: str, *statements: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(base, timeout=10)
    try:
        return [await conn.fetch(s) for s in statements]
    finally:
        await conn.close()


async def postgres_dataset(base: str, users: int, seed: int, reload: bool) -> Dataset:
    name = f"bench_core_u{users}_s{seed}"
    directory = dataset_dir("postgresql", users, seed)
    if reload:
        await _pg_admin(base, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(directory, ignore_errors=True)
    [exists] = await _pg_admin(base, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists:
        await _pg_admin(base, f"CREATE DATABASE {name}")
        shutil.rmtree(directory, ignore_errors=True)  # an index and notes about another database
    settings = load_settings(None, data_dir=str(directory), database_url=_pg_url(base, name),
                             user_profiling={"storage": "postgresql"})
    dataset = Dataset("postgresql", users, seed, name, directory, settings)
    await _fill(dataset)
    [[size]] = await _pg_admin(base, f"SELECT pg_database_size('{name}')")
    dataset.size_bytes = int(size[0])
    return dataset


# -- the copy a run measures ------------------------------------------------------------------------------------

@dataclass
class Workspace:
    database: str
    directory: Path  # data_dir: the SQLite file (sqlite), the similarity index and the item model
    config: Path
    settings: Settings
    drop: Callable[[], Any]


def _write_config(directory: Path, **overrides: Any) -> tuple[Path, Settings]:
    """The packaged settings with this run's storage: one file for both transports."""
    data = yaml.safe_load(DEFAULT_CONFIG.read_text())
    for key, value in overrides.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(value)
        else:
            data[key] = value
    path = directory / "settings.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    settings = load_settings(path)
    if CALLER not in settings.callers:
        raise BenchError(f"the settings must configure the caller {CALLER}")
    return path, settings


async def workspace(dataset: Dataset, postgres: str) -> Workspace:
    """A copy of the kept dataset (database and similarity index) that this run may change and then deletes."""
    directory = DATA / f"run-{dataset.database}-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    for part in (dataset.settings.vector_dir, dataset.settings.data_dir / "models"):  # the index, the item model
        if part.exists():
            shutil.copytree(part, directory / part.name, ignore=shutil.ignore_patterns("LOCK"))
    if dataset.database == "sqlite":
        source = sqlite3.connect(ROOT / dataset.where)
        target = sqlite3.connect(directory / dataset.settings.sqlite_path.name)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        config, settings = _write_config(directory, data_dir=str(directory))

        async def drop_sqlite() -> None:
            shutil.rmtree(directory, ignore_errors=True)

        return Workspace("sqlite", directory, config, settings, drop_sqlite)

    name = f"bench_core_run_{os.getpid()}"
    await _pg_admin(postgres, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name} TEMPLATE {dataset.where}")
    config, settings = _write_config(directory, data_dir=str(directory), database_url=_pg_url(postgres, name),
                                     user_profiling={"storage": "postgresql"})

    async def drop_postgres() -> None:
        await _pg_admin(postgres, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        shutil.rmtree(directory, ignore_errors=True)

    return Workspace("postgresql", directory, config, settings, drop_postgres)


# -- what the calls are about -----------------------------------------------------------------------------------

@dataclass
class Subjects:
    readers: list[str]  # users who granted READ_PURPOSE now
    items: list[str]  # catalog products
    candidates: int  # users whose latest personalization record is a grant


async def pick_subjects(settings: Settings, pool: int, seed: int) -> Subjects:
    store = open_store(settings)
    try:
        now = datetime.now(UTC)
        candidates: list[str] = []
        after = ""
        async with store.read() as repo:
            while page := await repo.profile_ids(after, 10_000):
                candidates += await repo.consenting(READ_PURPOSE, now, page)
                after = page[-1]
            items = [i.item_id for i in await repo.all_items() if i.kind == "product"]
        rng = random.Random(f"subjects/{seed}")
        rng.shuffle(candidates)
        readers: list[str] = []
        async with store.read() as repo:
            for user_id in candidates:
                if (await repo.consents(user_id)).decide(READ_PURPOSE, now).allowed:  # the gate's own decision
                    readers.append(user_id)
                    if len(readers) == pool:
                        break
    finally:
        await store.close()
    if not readers or not items:
        raise BenchError("the dataset has no user who granted personalization, or no products")
    return Subjects(readers, items, len(candidates))


# -- measuring --------------------------------------------------------------------------------------------------

def _arguments(op: str, n: int, subjects: Subjects, rng: random.Random) -> dict[str, Any]:
    readers = subjects.readers
    if op == "record_event":
        # Another user than the round's get_profile, so a read never just follows a write on the same rows.
        return {"user_id": readers[(n + len(readers) // 2) % len(readers)], "event_type": "view",
                "item_id": rng.choice(subjects.items)}
    return {"user_id": readers[n % len(readers)], "purpose": READ_PURPOSE}  # get_profile and both baselines


def _check(op: str, result: Any) -> None:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise BenchError(f"{op} failed: {text}")
    out = result.structured_content or {}
    if op in ("get_profile", REPLAY) and not out.get("preferences") and not out.get("behavior"):
        raise BenchError(f"{op} released no preferences and no behaviour: {out}")
    if op == "record_event" and out.get("learning") != "applied":
        raise BenchError(f"record_event did not learn within the call: {out}")
    if op == NOOP and out != {"ok": True}:
        raise BenchError(f"the no-op returned {out}")


@dataclass
class Samples:
    wall: dict[str, list[int]]  # nanoseconds per call, by operation
    cpu: dict[str, list[int]]  # this process's CPU time per call


async def run_rounds(client: Client, operations: Sequence[str], calls: int, warmup: int, subjects: Subjects,
                     seed: int, profiler: cProfile.Profile | None = None) -> Samples:
    """Warm up, then ``calls`` rounds of one call per operation, the order rotating each round."""
    await client.list_tools()  # the client checks structured results against the listed output schemas
    rng = random.Random(f"calls/{seed}")
    samples = Samples({op: [] for op in operations}, {op: [] for op in operations})
    clock, cpu_clock = time.perf_counter_ns, time.process_time_ns
    for n in range(warmup + calls):
        measured = n >= warmup
        if measured and n == warmup and profiler is not None:
            profiler.enable()
        k = n % len(operations)
        for op in (*operations[k:], *operations[:k]):
            arguments = _arguments(op, n, subjects, rng)
            c0, t0 = cpu_clock(), clock()
            result = await client.call_tool(op, arguments)
            elapsed, cpu = clock() - t0, cpu_clock() - c0
            if n < warmup + len(operations) or result.is_error:
                _check(op, result)
            if measured:
                samples.wall[op].append(elapsed)
                samples.cpu[op].append(cpu)
    if profiler is not None:
        profiler.disable()
    return samples


async def measure(workspace: Workspace, transport: str, operations: Sequence[str], calls: int, warmup: int,
                  subjects: Subjects, seed: int, mode: str, profile: Path | None) -> Samples:
    async with AsyncExitStack() as stack:
        if transport == "inprocess":
            runtime = await bootstrap(workspace.settings)
            stack.push_async_callback(runtime.close)
            server = build_server(runtime, caller_from="local", local_caller=CALLER)
            add_baselines(server, runtime, CALLER)
            settle()  # as `mnky-profiles serve` does after start-up
            target: Any = server
        else:
            # The SDK passes only a safe default environment to the subprocess; settings overrides from the
            # environment (MNKY_*) reach it too, so both transports run with the same settings.
            target = StdioServerParameters(command=sys.executable,
                                           args=[str(LAUNCHER), str(workspace.config), "--caller", CALLER],
                                           cwd=str(ROOT), env={k: v for k, v in os.environ.items()
                                                               if k.startswith(ENV_PREFIX)})
        client = await stack.enter_async_context(Client(target, mode=mode))
        profiler = cProfile.Profile() if profile is not None and transport == "inprocess" else None
        samples = await run_rounds(client, operations, calls, warmup, subjects, seed, profiler)
        if profiler is not None and profile is not None:
            path = profile.with_name(f"{profile.stem}-{workspace.database}{profile.suffix or '.prof'}")
            profiler.dump_stats(path)
            log(f"profile of the in-process {workspace.database} rounds written to {path}")
    return samples


# -- reporting --------------------------------------------------------------------------------------------------

@dataclass
class Row:
    database: str
    transport: str
    operation: str
    calls: int
    p50: float  # milliseconds
    p99: float
    mean: float
    p50_ratio: float  # over the no-op's p50 in the same run
    p99_ratio: float
    cpu_p50: float | None  # in-process only: this process's CPU per call (client and server)
    cpu_ratio: float | None


def summarize(database: str, transport: str, samples: Samples) -> list[Row]:
    base = milliseconds(samples.wall[NOOP])
    base_p50, base_p99 = float(np.percentile(base, 50)), float(np.percentile(base, 99))
    base_cpu = float(np.percentile(milliseconds(samples.cpu[NOOP]), 50))
    rows = []
    for op, values in samples.wall.items():
        ms = milliseconds(values)
        p50, p99 = float(np.percentile(ms, 50)), float(np.percentile(ms, 99))
        cpu = float(np.percentile(milliseconds(samples.cpu[op]), 50)) if transport == "inprocess" else None
        rows.append(Row(database, transport, op, len(values), p50, p99, float(ms.mean()), p50 / base_p50,
                        p99 / base_p99, cpu, cpu / base_cpu if cpu is not None else None))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = ["| database | transport | operation | calls | p50 ms | p99 ms | mean ms | p50 / no-op p50 "
             "| p99 / no-op p99 | CPU p50 ms | CPU p50 / no-op |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        cpu = (f"{r.cpu_p50:.3f}", f"{r.cpu_ratio:.2f}x") if r.cpu_p50 is not None and r.cpu_ratio else ("", "")
        lines.append(f"| {r.database} | {r.transport} | {r.operation} | {r.calls} | {r.p50:.3f} | {r.p99:.3f} "
                     f"| {r.mean:.3f} | {r.p50_ratio:.2f}x | {r.p99_ratio:.2f}x | {cpu[0]} | {cpu[1]} |")
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.transport == "inprocess" and r.operation == "get_profile":
            met = "met" if r.p50_ratio <= 2.0 else "missed"
            line = (f"{r.database}: gated get_profile p50 is {r.p50_ratio:.2f}x the no-op's in-process "
                    f"(target: within 2x): {met}")
            if r.cpu_ratio is not None:
                line += f"; CPU {r.cpu_ratio:.1f}x"
            replay = next((x for x in rows if (x.database, x.transport, x.operation)
                           == (r.database, r.transport, REPLAY)), None)
            if replay is not None:
                line += (f". Replaying its result without the product's work is already {replay.p50_ratio:.2f}x the "
                         f"no-op; get_profile is {r.p50 / replay.p50:.2f}x the replay")
            out.append(line)
    return out


def sizes(datasets: Sequence[Dataset]) -> str:
    lines = ["| database | kept as | " + " | ".join(t.name for t in COUNTED) + " | indexed users | size |",
             "|---|---|" + "--:|" * (len(COUNTED) + 2)]
    for d in datasets:
        counts = " | ".join(f"{d.rows[t.name]:,}" for t in COUNTED)
        lines.append(f"| {d.database} | `{d.where}` | {counts} | {d.indexed:,} | {d.size_bytes / 2**20:,.0f} MiB |")
    for d in datasets:
        times = [f"{what} in {d.meta[key]} s" for what, key in (
            ("loaded", "load_seconds"), ("relearned", "relearn_seconds"), ("item model fitted", "fit_seconds"))
            if key in d.meta]
        lines.append(f"\n{d.database}: generated for {d.meta.get('demo_now', '?')}"
                     + (f"; {', '.join(times)}" if times else "") + ".")
    return "\n".join(lines)


@dataclass
class Run:
    args: argparse.Namespace
    command: str
    started: datetime
    load_start: str
    revision_start: str
    load_end: str = ""
    revision_end: str = ""
    datasets: list[Dataset] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    postgres: str = ""  # the server's version and the settings that matter here


def report(run: Run) -> str:
    a = run.args
    warmups = ", ".join(f"{a.warmups[tr]} rounds {tr}" for tr in a.transports)
    code = run.revision_start
    described = machine(("mcp", "SQLAlchemy", "asyncpg"), f"SQLite {sqlite3.sqlite_version}")
    if run.revision_end != run.revision_start:
        code += f" at start, {run.revision_end} at end (the code changed during the run)"
    return "\n".join([
        "# Core call latency: gated tools against a no-op",
        "",
        "Produced by `benchmarks/bench_core.py` (method, data and options in its docstring):",
        "",
        "```",
        run.command,
        "```",
        "",
        f"- Date: {run.started.isoformat(timespec='seconds')}; code: {code}.",
        f"- Machine: {described}{'; ' + run.postgres if run.postgres else ''}.",
        f"- Load average (1/5/15 min): {run.load_start} at start, {run.load_end} at end. The machine was shared "
        "with other work; wall times include waiting for a core, CPU times do not.",
        "",
        "## Results",
        "",
        table(run.rows),
        "",
        *[f"- {v}" for v in verdicts(run.rows)],
        *[f"- {n}" for n in run.notes],
        "",
        "How to read it: latency is the client's wall time for one `call_tool`, one call at a time, after a "
        f"warm-up ({warmups}); each round calls each tool once, the order rotating each round, and the "
        "ratios divide by the no-op's p50 and p99 from the same run. CPU p50 (in-process only) is this "
        "process's CPU time per call: client and server, SQLite included, PostgreSQL's own work not. The "
        "baselines are tools on the same server, registered after `build_server` with `add_tool`: same SDK "
        "path and middleware, no audit entry. `noop` does no work; `profile_replay` returns one real "
        "`get_profile` result recorded on its first call, so it costs what the SDK and the client spend on a "
        "result of that size and schema. `get_profile` reads with purpose personalization as "
        f"{CALLER}, spread over {a.pool_size} users who granted it; `record_event` records a `view` of a "
        "catalog product by one of them with realtime learning on (the default): preferences, the user's "
        "vector and the similarity index are updated within the call. Both gated tools append a hash-chained "
        f"audit entry. In-process is the SDK's `Client(server)` (mode {a.mode}); stdio is "
        "`benchmarks/bench_core_server.py` (the product's server plus the same baselines) in a subprocess.",
        "",
        "## Data",
        "",
        f"The demo population (`examples.demo.load_demo`, {a.users:,} users, seed {a.seed}), its events then "
        "folded into preferences, vectors and the similarity index by `LearningRuns.relearn`, and the item model "
        "fitted. Each run measures a copy of it, deleted afterwards. Rows before the run:",
        "",
        sizes(run.datasets),
        "",
    ])


# -- main -------------------------------------------------------------------------------------------------------

def _choices(value: str, allowed: Sequence[str]) -> list[str]:
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)} (comma-separated)")
    return chosen


def _calls(value: str) -> dict[str, int]:
    """``N`` for both transports, or ``IN,STDIO``."""
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or min(numbers) < 1:
        raise argparse.ArgumentTypeError("give N, or N_INPROCESS,N_STDIO (positive)")
    return dict(zip(TRANSPORTS, numbers * 2 if len(numbers) == 1 else numbers, strict=True))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=100_000, help="demo users (default 100000)")
    p.add_argument("--seed", type=int, default=7, help="demo seed (default 7)")
    p.add_argument("--databases", type=lambda v: _choices(v, DATABASES), default=list(DATABASES),
                   help="sqlite,postgresql (default both)")
    p.add_argument("--transports", type=lambda v: _choices(v, TRANSPORTS), default=list(TRANSPORTS),
                   help="inprocess,stdio (default both)")
    p.add_argument("--calls", type=_calls, default=dict(DEFAULT_CALLS),
                   help="measured rounds per transport: N, or N_INPROCESS,N_STDIO (default 2000,500)")
    p.add_argument("--warmup", type=_calls, default=None,
                   help="warm-up rounds: N, or N_INPROCESS,N_STDIO (default a tenth of --calls, at least 20)")
    p.add_argument("--operations", type=lambda v: _choices(v, OPERATIONS[1:]), default=list(OPERATIONS[1:]),
                   help=f"what to measure besides the no-op, which always runs: {','.join(OPERATIONS[1:])} (default "
                        "all). One alone makes a profile of it (--profile, py-spy) easy to read")
    p.add_argument("--pool-size", type=int, default=1000, help="users the calls are spread over (default 1000)")
    p.add_argument("--mode", default="auto", choices=["auto", "legacy"],
                   help="the SDK client's protocol mode (default auto: the 2026-07-28 protocol)")
    p.add_argument("--postgres-url", default=DEFAULT_POSTGRES,
                   help="a database on the PostgreSQL server to administer from; the benchmark creates its own "
                        f"databases there (default {DEFAULT_POSTGRES}, or MNKY_BENCH_POSTGRES_URL)")
    p.add_argument("--reload", action="store_true", help="drop the kept datasets and load them again")
    p.add_argument("--drop-data", action="store_true", help="delete the kept datasets after the run")
    p.add_argument("--profile", type=Path, help="write cProfile stats of the in-process measured rounds to this "
                   "path (one file per database, suffixed with its name)")
    p.add_argument("--write", action="store_true", help=f"write the report to {RESULTS.relative_to(ROOT)}")
    return p


async def run_database(run: Run, database: str) -> None:
    a = run.args
    if database == "sqlite":
        dataset = await sqlite_dataset(a.users, a.seed, a.reload)
    else:
        dataset = await postgres_dataset(a.postgres_url, a.users, a.seed, a.reload)
        shown = await _pg_admin(a.postgres_url, *(f"SHOW {name}" for name in ("server_version", "synchronous_commit",
                                                                                "shared_buffers")))
        version_, sync, buffers = (rows[0][0] for rows in shown)
        run.postgres = f"PostgreSQL {version_} (synchronous_commit {sync}, shared_buffers {buffers})"
    run.datasets.append(dataset)
    ws = await workspace(dataset, a.postgres_url)
    try:
        subjects = await pick_subjects(ws.settings, a.pool_size, a.seed)
        if len(subjects.readers) < a.pool_size:
            run.notes.append(f"{database}: only {len(subjects.readers)} users grant {READ_PURPOSE}; the calls "
                             "are spread over them")
        for transport in a.transports:
            log(f"{database} {transport}: {a.warmups[transport]} warm-up and {a.calls[transport]} measured rounds "
                f"(load average {loadavg()})")
            t0 = time.perf_counter()
            samples = await measure(ws, transport, (NOOP, *a.operations), a.calls[transport], a.warmups[transport],
                                    subjects, a.seed, a.mode, a.profile)
            rows = summarize(database, transport, samples)
            run.rows += rows
            log(table(rows) + f"\n({time.perf_counter() - t0:.0f} s, load average {loadavg()})")
    finally:
        await ws.drop()
        if a.drop_data:
            await drop_dataset(dataset, a.postgres_url)


async def drop_dataset(dataset: Dataset, postgres: str) -> None:
    if dataset.database == "postgresql":
        await _pg_admin(postgres, f"DROP DATABASE IF EXISTS {dataset.where} WITH (FORCE)")
    shutil.rmtree(dataset.directory, ignore_errors=True)
    log(f"{dataset.database}: deleted the kept dataset {dataset.where}")


async def main_async(run: Run) -> None:
    for database in run.args.databases:
        await run_database(run, database)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.users < 1 or args.pool_size < 1:
        parser().error("--users and --pool-size must be positive")
    args.warmups = args.warmup or {tr: max(20, n // 10) for tr, n in args.calls.items()}
    run = Run(args, command_line(), datetime.now(UTC), loadavg(), revision())
    log(f"{machine()}\nload average at start: {run.load_start}")
    try:
        anyio.run(main_async, run)
    except BenchError as exc:
        log(f"bench_core: {exc}")
        return 1
    run.load_end, run.revision_end = loadavg(), revision()
    out = report(run)
    print(out)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(out)
        log(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
