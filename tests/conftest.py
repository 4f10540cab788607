"""Shared fixtures: real SQLite files and a real PostgreSQL, the same runtime a user runs, MCP clients.

PostgreSQL: MNKY_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test). When it is unreachable
the PostgreSQL cases skip, unless MNKY_REQUIRE_POSTGRES=1 (set by .ci/run), where they fail.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from mnky_profiles.domain.catalog import Item
from mnky_profiles.server.app import build_server
from mnky_profiles.server.runtime import Runtime, bootstrap
from mnky_profiles.server.settings import Settings, load_settings

PG_URL = os.environ.get("MNKY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("MNKY_REQUIRE_POSTGRES") == "1"
ERAS = ["legacy", "auto"]  # "auto" negotiates the modern (2026-07-28) era with this SDK


def _pg_reachable() -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(PG_URL, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


_PG_OK: bool | None = None


def require_postgres() -> None:
    global _PG_OK
    if _PG_OK is None:
        _PG_OK = _pg_reachable()
    if not _PG_OK:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required (MNKY_REQUIRE_POSTGRES=1) but {PG_URL} is unreachable")
        pytest.skip(f"PostgreSQL unreachable at {PG_URL}")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A clock the tests move; everything else is real."""

    def __init__(self) -> None:
        self.current = datetime.now(UTC).replace(microsecond=0)

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@asynccontextmanager
async def pg_schema() -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, dropped afterwards, so tests never see each other's rows."""
    import asyncpg

    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(PG_URL)
    try:
        await conn.execute(f"CREATE SCHEMA {name}")
        yield name
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        await conn.close()


def make_settings(backend: str, tmp_path: Path, schema: str | None = None, **overrides: Any) -> Settings:
    base: dict[str, Any] = {"data_dir": str(tmp_path)}
    if backend == "postgresql":
        base |= {"user_profiling": {"storage": "postgresql"}, "database_url": PG_URL, "database_schema": schema}
    profiling = {**base.pop("user_profiling", {}), **overrides.pop("user_profiling", {})}
    if profiling:
        base["user_profiling"] = profiling
    return load_settings(None, **base, **overrides)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


CATALOG = [
    Item("candle-lavender", "product", "Lavender Dusk Candle",
         {"type": ["candle"], "note": ["lavender", "vanilla"], "family": ["floral"], "mood": ["calm"]}),
    Item("perfume-oud", "product", "Midnight Oud Eau de Parfum",
         {"type": ["fragrance"], "note": ["oud", "musk"], "family": ["woody"], "mood": ["bold"]}),
    Item("bath-citrus", "product", "Citrus Morning Bath Salts",
         {"type": ["bath"], "note": ["bergamot", "lemon"], "family": ["citrus"], "mood": ["energized"]}),
    Item("guide-sleep", "content", "Wind-down ritual guide", {"topic": ["sleep"], "mood": ["calm"]}),
]


@dataclass
class World:
    """A bootstrapped runtime plus helpers to connect MCP clients as any configured caller."""

    runtime: Runtime
    clock: FakeClock
    servers: dict[str, Any] = field(default_factory=dict)

    def server(self, caller: str) -> Any:
        if caller not in self.servers:
            self.servers[caller] = build_server(self.runtime, local_caller=caller)
        return self.servers[caller]

    @asynccontextmanager
    async def client(self, caller: str = "privacy-officer", mode: str = "legacy") -> AsyncIterator[Client]:
        async with Client(self.server(caller), mode=mode) as c:
            yield c


@asynccontextmanager
async def open_world(backend: str, tmp_path: Path, clock: FakeClock, **overrides: Any) -> AsyncIterator[World]:
    async with AsyncExitStack() as stack:  # closes the runtime, then drops the PostgreSQL schema
        schema = await stack.enter_async_context(pg_schema()) if backend == "postgresql" else None
        runtime = await bootstrap(make_settings(backend, tmp_path, schema, **overrides), clock)
        stack.push_async_callback(runtime.close)
        async with runtime.store.write() as repo:
            await repo.put_items(CATALOG)
        yield World(runtime, clock)


@pytest.fixture
async def world(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with open_world(backend, tmp_path, clock) as w:
        yield w


WorldFactory = Callable[..., Any]
