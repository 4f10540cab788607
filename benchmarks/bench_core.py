"""Core call latency: gated ``get_profile`` and ``record_event`` against a no-op tool on the same server.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, trust auth, for the postgresql rows):

    .venv/bin/python benchmarks/bench_core.py [--users 100000] [--databases sqlite,postgresql]
        [--transports inprocess,stdio] [--calls 2000,500] [--write]

What is measured
  * Three tools of one server, through one MCP client session: ``noop``, ``get_profile`` and ``record_event``.
    ``noop`` is registered on the server that ``build_server`` returns (``benchmarks/bench_core_server.py``),
    after the gated tools, with ``server.add_tool``: the same SDK path (argument validation against the same
    argument types, structured output conversion, the client's output-schema check, the gate's middleware),
    but no work. It marks its call as accounted for so the fail-closed middleware lets it through without an
    audit entry; the gated tools write theirs, and that is part of their cost.
  * ``get_profile(user_id, purpose="personalization")`` as the caller ``shopping-assistant``, for users who
    granted personalization: the gate checks consent, the handler reads attributes, event counts and the last
    500 events, the gate releases the result field by field and appends a hash-chained audit entry.
  * ``record_event(user_id, event_type="view", item_id=<a catalog product>)``, purpose service: the event is
    validated and stored, and realtime learning (``update_frequency: realtime``, the default) folds it into the
    user's preferences, recomputes their vector and updates the similarity index within the call; then the
    audit entry. All of that is in the number.
  * Transports: ``inprocess`` is the SDK's in-memory ``Client(server)`` in this process (default mode "auto",
    which negotiates the 2026-07-28 protocol and dispatches without JSON-RPC framing); ``stdio`` starts
    ``benchmarks/bench_core_server.py`` as a subprocess (the product's server plus the same no-op) and drives it
    with the SDK client over ``StdioServerParameters``.
  * Latency is the client's wall time for one ``call_tool``, one call at a time. After a warm-up, the operations
    run in rounds (noop, get_profile, record_event; the order rotates each round) so drift in machine load
    touches all three alike. Reported: p50, p99, mean, and each operation's p50 and p99 over the no-op's p50 and
    p99 from the same run. Target: gated get_profile p50 within 2x the no-op's in-process.

Data
  The demo population (``examples.demo.load_demo``) of ``--users`` users and ``--seed``, loaded once per database
  and kept: SQLite under ``benchmarks/.data/sqlite-u<users>-s<seed>/``, PostgreSQL in the database
  ``bench_core_u<users>_s<seed>`` on the server of ``--postgres-url``. A kept dataset is reused when it holds
  exactly ``--users`` profiles (a row count check); otherwise the load resumes (``load_demo`` skips users already
  stored). ``--reload`` drops it and loads again. Each run measures a copy (SQLite: a backup of the file;
  PostgreSQL: ``CREATE DATABASE ... TEMPLATE``) that is deleted afterwards, so runs do not see each other's
  events, preferences or audit entries. ``--drop-data`` deletes the kept datasets after the run.

  ``load_demo`` writes histories as rows; it does not fold them into learned preferences. So at the start of a
  run no user has preferences or a vector and the similarity index is empty; ``record_event`` builds them from
  the events it records (the state of a freshly loaded demo server).

Timings share the machine with whatever else runs: the load average is printed at start and end. Compare ratios
from one run, not absolute numbers across machines.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import random
import shlex
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import sqlalchemy as sa
import yaml
from bench_core_server import NOOP, add_noop
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mnky_profiles.examples.demo import load_demo
from mnky_profiles.server.app import build_server
from mnky_profiles.server.runtime import bootstrap, open_store
from mnky_profiles.server.settings import DEFAULT_CONFIG, Settings, load_settings
from mnky_profiles.store.sql import schema as t
from mnky_profiles.store.sql.store import SQLStore

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results" / "core.md"
LAUNCHER = HERE / "bench_core_server.py"

CALLER = "shopping-assistant"
READ_PURPOSE = "personalization"
OPERATIONS = (NOOP, "get_profile", "record_event")
DATABASES = ("sqlite", "postgresql")
TRANSPORTS = ("inprocess", "stdio")
DEFAULT_CALLS = {"inprocess": 2000, "stdio": 500}
DEFAULT_POSTGRES = os.environ.get("MNKY_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
COUNTED = (t.profiles, t.attributes, t.events, t.consents, t.items)


class BenchError(Exception):
    pass


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- datasets ---------------------------------------------------------------------------------------------------

@dataclass
class Dataset:
    database: str
    users: int
    seed: int
    where: str  # the SQLite file or the PostgreSQL database that is kept
    demo_now: str  # the ``now`` the population was generated for
    rows: dict[str, int] = field(default_factory=dict)
    size_bytes: int = 0
    loaded_seconds: float | None = None  # None: reused


def _meta_path(database: str, users: int, seed: int) -> Path:
    return DATA / f"{database}-u{users}-s{seed}.json"


def _demo_now(database: str, users: int, seed: int) -> datetime:
    """The ``now`` of a dataset: kept beside it, so a resumed load generates the same users."""
    path = _meta_path(database, users, seed)
    if path.exists():
        return datetime.fromisoformat(json.loads(path.read_text())["demo_now"])
    now = datetime.now(UTC).replace(microsecond=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"database": database, "users": users, "seed": seed, "demo_now": now.isoformat()}))
    return now


async def _row_counts(store: SQLStore) -> dict[str, int]:
    def count(conn: Any) -> dict[str, int]:
        return {table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                for table in COUNTED}
    return await store.db.run_sync(count)


async def _fill(store: SQLStore, dataset: Dataset) -> None:
    """Migrate, then load the demo unless it already holds exactly the requested population."""
    await store.migrate()
    present = (await _row_counts(store))["profiles"]
    if present == dataset.users:
        log(f"{dataset.database}: reusing {dataset.where} ({present} profiles)")
    else:
        if present > dataset.users:
            raise BenchError(f"{dataset.where} holds {present} profiles, more than --users {dataset.users}; "
                             "use --reload")
        log(f"{dataset.database}: loading the demo into {dataset.where} ({present} of {dataset.users} users "
            "present); this takes a while at 100,000 users")
        t0 = time.perf_counter()
        summary = await load_demo(store, users=dataset.users, seed=dataset.seed,
                                  now=datetime.fromisoformat(dataset.demo_now))
        dataset.loaded_seconds = time.perf_counter() - t0
        log(f"{dataset.database}: loaded in {dataset.loaded_seconds:.0f} s: {summary}")
    dataset.rows = await _row_counts(store)
    if dataset.rows["profiles"] != dataset.users:
        raise BenchError(f"{dataset.where} holds {dataset.rows['profiles']} profiles after loading")


def sqlite_dir(users: int, seed: int) -> Path:
    return DATA / f"sqlite-u{users}-s{seed}"


async def sqlite_dataset(users: int, seed: int, reload: bool) -> Dataset:
    directory = sqlite_dir(users, seed)
    if reload:
        shutil.rmtree(directory, ignore_errors=True)
        _meta_path("sqlite", users, seed).unlink(missing_ok=True)
    settings = load_settings(None, data_dir=str(directory))
    dataset = Dataset("sqlite", users, seed, str(settings.sqlite_path.relative_to(ROOT)),
                      _demo_now("sqlite", users, seed).isoformat())
    store = open_store(settings)
    try:
        await _fill(store, dataset)
    finally:
        await store.close()
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
    if reload:
        await _pg_admin(base, f"DROP DATABASE IF EXISTS {name}")
        _meta_path("postgresql", users, seed).unlink(missing_ok=True)
    [exists] = await _pg_admin(base, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if not exists:
        await _pg_admin(base, f"CREATE DATABASE {name}")
    dataset = Dataset("postgresql", users, seed, name, _demo_now("postgresql", users, seed).isoformat())
    store = SQLStore.postgresql(_pg_url(base, name))
    try:
        await _fill(store, dataset)
    finally:
        await store.close()
    [[size]] = await _pg_admin(base, f"SELECT pg_database_size('{name}')")
    dataset.size_bytes = int(size[0])
    return dataset


# -- the copy a run measures ------------------------------------------------------------------------------------

@dataclass
class Workspace:
    database: str
    directory: Path  # data_dir: the SQLite file (sqlite), the vector index and the item model
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
    if settings.local_caller is None or CALLER not in settings.callers:
        raise BenchError(f"the settings must configure the caller {CALLER}")
    return path, settings


async def workspace(dataset: Dataset, postgres: str) -> Workspace:
    directory = DATA / f"run-{dataset.database}-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    if dataset.database == "sqlite":
        source = sqlite3.connect(ROOT / dataset.where)
        target = sqlite3.connect(directory / "mnky-profiles.db")
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
        async with store.read() as repo:
            candidates = await repo.consenting(READ_PURPOSE, now, limit=10**9)
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
    return {"user_id": readers[n % len(readers)], "purpose": READ_PURPOSE}


def _check(op: str, result: Any) -> None:
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        raise BenchError(f"{op} failed: {text}")
    out = result.structured_content or {}
    if op == "get_profile" and not out.get("preferences") and not out.get("behavior"):
        raise BenchError(f"get_profile released no preferences and no behaviour: {out}")
    if op == "record_event" and out.get("learning") != "applied":
        raise BenchError(f"record_event did not learn within the call: {out}")
    if op == NOOP and out != {"ok": True}:
        raise BenchError(f"the no-op returned {out}")


async def run_rounds(client: Client, operations: Sequence[str], calls: int, warmup: int, subjects: Subjects,
                     seed: int, profiler: cProfile.Profile | None = None) -> dict[str, list[int]]:
    """Warm up, then ``calls`` rounds of one call per operation, the order rotating each round."""
    await client.list_tools()  # the client checks structured results against the listed output schemas
    rng = random.Random(f"calls/{seed}")
    samples: dict[str, list[int]] = {op: [] for op in operations}
    clock = time.perf_counter_ns
    for n in range(warmup + calls):
        measured = n >= warmup
        if measured and n == warmup and profiler is not None:
            profiler.enable()
        k = n % len(operations)
        for op in (*operations[k:], *operations[:k]):
            arguments = _arguments(op, n, subjects, rng)
            t0 = clock()
            result = await client.call_tool(op, arguments)
            elapsed = clock() - t0
            if n < warmup + len(operations) or result.is_error:
                _check(op, result)
            if measured:
                samples[op].append(elapsed)
    if profiler is not None:
        profiler.disable()
    return samples


async def measure(workspace: Workspace, transport: str, operations: Sequence[str], calls: int, warmup: int,
                  subjects: Subjects, seed: int, mode: str, profile: Path | None) -> dict[str, list[int]]:
    async with AsyncExitStack() as stack:
        if transport == "inprocess":
            runtime = await bootstrap(workspace.settings)
            stack.push_async_callback(runtime.close)
            server = build_server(runtime, caller_from="local", local_caller=CALLER)
            add_noop(server)
            target: Any = server
        else:
            target = StdioServerParameters(command=sys.executable,
                                           args=[str(LAUNCHER), str(workspace.config), "--caller", CALLER],
                                           cwd=str(ROOT))
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
    p50_ratio: float | None
    p99_ratio: float | None


def summarize(database: str, transport: str, samples: dict[str, list[int]]) -> list[Row]:
    def stats(values: list[int]) -> tuple[float, float, float]:
        ms = np.asarray(values, dtype=np.float64) / 1e6
        return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.mean())

    base = stats(samples[NOOP]) if samples.get(NOOP) else None
    rows = []
    for op, values in samples.items():
        p50, p99, mean = stats(values)
        rows.append(Row(database, transport, op, len(values), p50, p99, mean,
                        p50 / base[0] if base else None, p99 / base[1] if base else None))
    return rows


def table(rows: Sequence[Row]) -> str:
    lines = ["| database | transport | operation | calls | p50 ms | p99 ms | mean ms | p50 / no-op p50 "
             "| p99 / no-op p99 |",
             "|---|---|---|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        ratio = (f"{r.p50_ratio:.2f}x", f"{r.p99_ratio:.2f}x") if r.p50_ratio is not None else ("", "")
        lines.append(f"| {r.database} | {r.transport} | {r.operation} | {r.calls} | {r.p50:.3f} | {r.p99:.3f} "
                     f"| {r.mean:.3f} | {ratio[0]} | {ratio[1]} |")
    return "\n".join(lines)


def verdicts(rows: Sequence[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.transport == "inprocess" and r.operation == "get_profile" and r.p50_ratio is not None:
            met = "met" if r.p50_ratio <= 2.0 else "MISSED"
            out.append(f"{r.database}: gated get_profile p50 is {r.p50_ratio:.2f}x the no-op's in-process "
                       f"(target 2x): {met}")
    return out


def command_line() -> str:
    python = Path(sys.executable)
    shown = os.path.relpath(python, ROOT) if python.is_relative_to(ROOT) else str(python)
    return shlex.join([shown, os.path.relpath(Path(sys.argv[0]).resolve(), ROOT), *sys.argv[1:]])


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")
    return (f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, mcp {version('mcp')}, SQLAlchemy {version('SQLAlchemy')}, "
            f"SQLite {sqlite3.sqlite_version}, asyncpg {version('asyncpg')}")


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def sizes(datasets: Sequence[Dataset]) -> str:
    lines = ["| database | kept as | generated for | " + " | ".join(t.name for t in COUNTED) + " | size |",
             "|---|---|---|" + "--:|" * (len(COUNTED) + 1)]
    for d in datasets:
        counts = " | ".join(f"{d.rows[t.name]:,}" for t in COUNTED)
        lines.append(f"| {d.database} | `{d.where}` | {d.demo_now} | {counts} | {d.size_bytes / 2**20:,.0f} MiB |")
    return "\n".join(lines)


@dataclass
class Run:
    args: argparse.Namespace
    command: str
    started: datetime
    load_start: str
    load_end: str = ""
    datasets: list[Dataset] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def report(run: Run) -> str:
    a = run.args
    parts = [
        "# Core call latency: gated tools against a no-op",
        "",
        "Produced by:",
        "",
        "```",
        run.command,
        "```",
        "",
        f"Date: {run.started.isoformat(timespec='seconds')}. Machine: {machine()}. Load average (1/5/15 min) "
        f"at start {run.load_start}, at end {run.load_end}; the machine was shared with other work.",
        "",
        "Method: one MCP client session per database and transport; one call at a time; the client's wall time "
        "per `call_tool`. After a warm-up of "
        f"{', '.join(f'{w} rounds {tr}' for tr, w in a.warmups.items() if tr in a.transports)}, "
        "each round calls the three tools once, the order rotating each round; the ratios divide by the "
        "no-op's p50 and p99 from the same run. The no-op is a tool on the same server (same SDK path, same "
        "middleware, no work, no audit entry). `get_profile` reads with purpose personalization as "
        f"{CALLER}, for {a.pool_size} users who granted it; `record_event` records a `view` of a catalog "
        "product by one of them, with realtime learning on (the default), which updates preferences, the "
        "user's vector and the similarity index within the call. Both gated tools append a hash-chained "
        "audit entry. In-process is the SDK's `Client(server)` (mode "
        f"{a.mode}); stdio is `benchmarks/bench_core_server.py` in a subprocess.",
        "",
        "## Results",
        "",
        table(run.rows),
        "",
        *[f"- {v}" for v in verdicts(run.rows)],
        *[f"- {n}" for n in run.notes],
        "",
        "## Data",
        "",
        f"The demo population (`examples.demo.load_demo`, {a.users:,} users, seed {a.seed}); each run measures "
        "a copy of it. The demo's histories are rows, not learned preferences: at the start of a run no user "
        "has preferences or a vector and the similarity index is empty.",
        "",
        sizes(run.datasets),
        "",
    ]
    return "\n".join(parts)


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
            samples = await measure(ws, transport, OPERATIONS, a.calls[transport], a.warmups[transport],
                                    subjects, a.seed, a.mode, a.profile)
            rows = summarize(database, transport, samples)
            run.rows += rows
            log(table(rows) + f"\n({time.perf_counter() - t0:.0f} s, load average {loadavg()})")
    finally:
        await ws.drop()
        if a.drop_data:
            await drop_dataset(dataset, a.postgres_url)


async def drop_dataset(dataset: Dataset, postgres: str) -> None:
    if dataset.database == "sqlite":
        shutil.rmtree(sqlite_dir(dataset.users, dataset.seed), ignore_errors=True)
    else:
        await _pg_admin(postgres, f"DROP DATABASE IF EXISTS {dataset.where} WITH (FORCE)")
    _meta_path(dataset.database, dataset.users, dataset.seed).unlink(missing_ok=True)
    log(f"{dataset.database}: deleted the kept dataset {dataset.where}")


async def main_async(run: Run) -> None:
    for database in run.args.databases:
        await run_database(run, database)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.users < 1 or args.pool_size < 1:
        parser().error("--users and --pool-size must be positive")
    args.warmups = args.warmup or {tr: max(20, n // 10) for tr, n in args.calls.items()}
    run = Run(args, command_line(), datetime.now(UTC), loadavg())
    log(f"{machine()}\nload average at start: {run.load_start}")
    try:
        anyio.run(main_async, run)
    except BenchError as exc:
        log(f"bench_core: {exc}")
        return 1
    run.load_end = loadavg()
    out = report(run)
    print(out)
    if args.write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(out)
        log(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
