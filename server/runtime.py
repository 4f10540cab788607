"""Bootstrap: build every part once from settings. Tests build the same graph with other settings."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ..domain.callers import Caller
from ..domain.ports import Clock
from ..privacy.audit import AuditLog
from ..privacy.gate import Gate
from ..privacy.pseudonyms import Pseudonymizer
from ..store.sql.store import SQLStore
from ..usecases.app import UseCases
from ..usecases.consent import Consents
from ..usecases.events import Events
from ..usecases.profiles import Profiles
from .settings import Settings


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def callers_from(settings: Settings) -> dict[str, Caller]:
    return {
        name: Caller(name=name, purposes=frozenset(c.purposes), categories=frozenset(c.categories),
                     roles=frozenset(c.roles), identifiers=c.identifiers, subject=c.subject,
                     default_purpose=c.default_purpose)
        for name, c in settings.callers.items()
    }


@dataclass
class Runtime:
    settings: Settings
    store: SQLStore
    clock: Clock
    gate: Gate
    usecases: UseCases
    audit: AuditLog
    pseudonyms: Pseudonymizer
    callers: dict[str, Caller]

    async def close(self) -> None:
        await self.store.close()


def open_store(settings: Settings) -> SQLStore:
    if settings.user_profiling.storage == "postgresql":
        assert settings.database_url is not None
        return SQLStore.postgresql(settings.database_url, settings.database_schema)
    return SQLStore.sqlite(settings.sqlite_path)


async def bootstrap(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    store = open_store(settings)
    try:
        await store.migrate()
        pseudonyms = Pseudonymizer(await store.secret("pseudonyms"))
    except BaseException:
        await store.close()
        raise
    profiling = settings.user_profiling
    usecases = UseCases(
        profiles=Profiles(store),
        events=Events(store, profiling.retention_days),
        consents=Consents(store),
    )
    return Runtime(
        settings=settings, store=store, clock=clock,
        gate=Gate(store, clock, profiling.anonymization), usecases=usecases,
        audit=AuditLog(store), pseudonyms=pseudonyms, callers=callers_from(settings),
    )
