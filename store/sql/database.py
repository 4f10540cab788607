"""Two executors for the same SQLAlchemy Core statements.

SQLite runs in-process through the synchronous driver on the event loop's thread: a statement costs
microseconds, far less than handing it to a worker thread (measured: aiosqlite read p50 ~400 us against ~25 us
here). An asyncio lock keeps one transaction at a time on the shared connection; WAL checkpoints run on a thread of
their own so no call waits for one. PostgreSQL runs through asyncpg.
Repositories see one interface, ``await conn.execute(statement, params)``, and buffered results.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ...domain.errors import Conflict, StoreUnavailable

T = TypeVar("T")


class Conn(Protocol):
    dialect: str

    async def execute(self, statement: Any, params: Any = None) -> CursorResult[Any]: ...


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, IntegrityError):
        return Conflict("The write conflicts with existing data.")
    return StoreUnavailable(f"{type(exc.__cause__ or exc).__name__}: {str(exc.__cause__ or exc).splitlines()[0]}")


class Database(ABC):
    dialect: str

    @abstractmethod
    def read(self) -> Any:
        """An async context manager yielding a connection for reads."""

    @abstractmethod
    def write(self) -> Any:
        """An async context manager yielding a connection in a transaction: commit on exit, rollback on error."""

    @abstractmethod
    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` with a synchronous connection in a transaction (migrations, bulk loads)."""

    @abstractmethod
    async def scrub(self, tables: Sequence[str]) -> None:
        """After an erasure: leave no copy of the deleted rows where the database can still reach them."""

    @abstractmethod
    async def close(self) -> None: ...


class _SyncConn:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.dialect = "sqlite"

    async def execute(self, statement: Any, params: Any = None) -> CursorResult[Any]:
        try:
            return self._conn.execute(statement, params)
        except DBAPIError as exc:
            raise _translate(exc) from exc


class _Checkpointer:
    """Copies SQLite's write-ahead log back into the database file from a thread of its own.

    Left to itself, SQLite checkpoints inside whichever commit crosses ``wal_autocheckpoint`` pages: that call
    then also copies the pages and fsyncs the file, milliseconds on top of a sub-millisecond call. The serving
    connection turns that off, and this thread runs passive checkpoints (they never block readers or writers)
    every ``interval`` seconds on its own connection; sqlite3 releases the GIL while it works.
    """

    def __init__(self, path: Path, interval: float) -> None:
        self._path, self._interval = path, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoint:{path.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(self._path, check_same_thread=False)
        try:
            while not self._stop.wait(self._interval):
                with contextlib.suppress(sqlite3.Error):  # e.g. the file is busy; the next round tries again
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class SQLiteDatabase(Database):
    dialect = "sqlite"
    checkpoint_seconds = 1.0

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.engine = sa.create_engine(
            f"sqlite:///{path}", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )

        @sa.event.listens_for(self.engine, "connect")
        def _configure(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself, below
            # secure_delete: a deleted row's bytes are overwritten with zeros, in its page and in freed pages, so
            # an erased subject is not left in the file's free space.
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=10000",
                           "wal_autocheckpoint=0", "secure_delete=ON"):  # autocheckpoint: the checkpointer's job
                dbapi_conn.execute(f"PRAGMA {pragma}")

        @sa.event.listens_for(self.engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers take the write lock up front so two processes never deadlock upgrading a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get("immediate") else "BEGIN")

        self._conn = self.engine.connect()
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._checkpointer = _Checkpointer(path, self.checkpoint_seconds)

    @asynccontextmanager
    async def _transaction(self, immediate: bool) -> AsyncIterator[Conn]:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            # Waiting for the lock this task holds would hang forever; pass the open transaction's repo instead.
            raise RuntimeError("a transaction was opened inside another on the same task")
        async with self._lock:
            self._owner = task
            try:
                self._conn.info["immediate"] = immediate
                try:
                    tx = self._conn.begin()
                except OperationalError as exc:
                    raise _translate(exc) from exc
                try:
                    yield _SyncConn(self._conn)
                except BaseException:
                    tx.rollback()
                    raise
                try:
                    tx.commit()
                except DBAPIError as exc:
                    raise _translate(exc) from exc
            finally:
                self._owner = None

    def read(self) -> Any:
        return self._transaction(immediate=False)

    def write(self) -> Any:
        return self._transaction(immediate=True)

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self._lock:
            self._conn.info["immediate"] = True
            with self._conn.begin():
                return fn(self._conn)

    async def scrub(self, tables: Sequence[str]) -> None:
        """The write-ahead log still holds the pages as they were before the erasure: copy the zeroed pages into
        the file and truncate the log to nothing. Retried while a reader holds an older snapshot."""
        async with self._lock:
            raw = self._conn.connection.dbapi_connection
            assert raw is not None
            for _ in range(100):
                busy, _log, _done = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy:
                    return
                await asyncio.sleep(0.05)
        raise StoreUnavailable("the SQLite write-ahead log stayed busy; the erased rows' old pages may remain in "
                               f"{self.path.name}-wal until the next checkpoint")

    async def close(self) -> None:
        self._checkpointer.stop()  # first: the last connection to close checkpoints the rest and removes the log
        self._conn.close()
        self.engine.dispose()


class _AsyncConn:
    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.dialect = "postgresql"

    async def execute(self, statement: Any, params: Any = None) -> CursorResult[Any]:
        try:
            result: CursorResult[Any] = await self._conn.execute(statement, params)
            return result
        except DBAPIError as exc:
            raise _translate(exc) from exc


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 10, schema: str | None = None) -> None:
        try:
            import asyncpg  # noqa: F401
            from sqlalchemy.ext.asyncio import create_async_engine
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise RuntimeError(
                "PostgreSQL storage needs the 'postgresql' extra: pip install 'mnky-profiles[postgresql]'"
            ) from exc
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+asyncpg://" + url.split("://", 1)[1]
        connect_args = {"server_settings": {"search_path": schema}} if schema else {}
        self.engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size,
                                          connect_args=connect_args)

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[Conn]:
        try:
            conn_cm = self.engine.connect()
            conn = await conn_cm.__aenter__()
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        try:
            # Read committed gives each statement its own snapshot anyway; autocommit saves BEGIN and ROLLBACK.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield _AsyncConn(conn)
        finally:
            await conn_cm.__aexit__(None, None, None)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[Conn]:
        try:
            cm = self.engine.begin()
            conn = await cm.__aenter__()
        except (DBAPIError, OSError) as exc:
            raise StoreUnavailable(f"cannot reach PostgreSQL: {exc}") from exc
        try:
            yield _AsyncConn(conn)
        except BaseException as exc:
            await cm.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            await cm.__aexit__(None, None, None)
        except DBAPIError as exc:
            raise _translate(exc) from exc

    def read(self) -> Any:
        return self._read()

    def write(self) -> Any:
        return self._write()

    async def run_sync(self, fn: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as conn:
            result: T = await conn.run_sync(fn)
            return result

    async def scrub(self, tables: Sequence[str]) -> None:
        """VACUUM the touched tables so their dead row versions become free space. PostgreSQL does not zero that
        space: the bytes stay in the data files until overwritten, out of reach of SQL but not of the disk."""
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM needs no transaction
                for table in tables:
                    await conn.exec_driver_sql(f'VACUUM "{table}"')
        except DBAPIError as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        await self.engine.dispose()
