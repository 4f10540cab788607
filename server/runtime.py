"""Bootstrap: build every part once from settings. Tests build the same graph with other settings."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..domain.callers import Caller
from ..domain.ports import Clock, Embedder, PersonalData, Store, VectorIndex
from ..privacy.audit import AuditKey, AuditLog
from ..privacy.gate import Gate
from ..privacy.pseudonyms import Pseudonymizer
from ..store.models import ModelFiles
from ..store.sql.store import SQLStore
from ..usecases.app import UseCases
from ..usecases.catalog import CatalogCache
from ..usecases.consent import Consents
from ..usecases.discovery import Discovery
from ..usecases.events import Events
from ..usecases.item_model import SharedModel
from ..usecases.learning import PreferenceLearner
from ..usecases.profiles import Profiles
from ..usecases.requests import Requests
from ..usecases.retention import Retention
from ..usecases.rights import Rights
from ..usecases.runs import LearningRuns
from ..usecases.vectors import IndexUpkeep, UserVectors
from .settings import ENV_PREFIX, ConfigError, Settings, audit_key_error

log = logging.getLogger("mnky_profiles")


def settle() -> None:
    """For a long-running server, once start-up is done: move what it allocated (modules, the catalog, caches) out
    of the garbage collector's reach, so full collections scan only what requests create. Measured at 1,000,000
    users: full-collection pauses of ~110 ms set the p99 of find_similar_users without it."""
    gc.collect()
    gc.freeze()


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
    """Everything built from settings, by its port: nothing past the bootstrap knows which adapters these are."""

    settings: Settings
    store: Store
    clock: Clock
    gate: Gate
    usecases: UseCases
    audit: AuditLog
    pseudonyms: Pseudonymizer
    callers: dict[str, Caller]
    embedder: Embedder
    index: VectorIndex
    # Everything that keeps data about a subject, in the order an erasure goes through them: the audit trail and
    # the index while the subject's key still names them, then the database (the key goes with the profile), the
    # cached key, and the shared model refitted without them.
    holders: tuple[PersonalData, ...] = ()

    async def close(self) -> None:
        await self.index.close()
        await self.embedder.close()
        await self.store.close()


def audit_keys(settings: Settings, *, create: bool = True) -> tuple[AuditKey, ...]:
    """The audit key, then the keys rotated out before it (``audit.previous_keys``).

    The key is ``audit.key`` when set, else the one in ``<data_dir>/audit.key``, made (mode 0600) on first start
    when ``create``. Never the database: whoever can rewrite the log there must not find the key beside it.
    """
    audit = settings.audit
    if audit.key is not None:
        key = AuditKey(bytes.fromhex(audit.key.get_secret_value().strip()))
    else:
        path = settings.audit_key_path
        if not path.exists():
            if not create:
                raise ConfigError(f"no audit key: audit.key is not set ({ENV_PREFIX}AUDIT__KEY) and {path} does not "
                                  f"exist. Give the key the log was written with.")
            _make_key_file(path)
        key = _read_key_file(path)
    previous = [AuditKey(bytes.fromhex(k.get_secret_value().strip())) for k in audit.previous_keys]
    return key, *(k for k in previous if k.id != key.id)


def _make_key_file(path: Path) -> None:
    """Write a new random key to ``path``, readable by the owner only. Written aside and linked into place, so a
    process starting at the same time reads either no file or the whole key; if it made one first, it is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, aside = tempfile.mkstemp(dir=path.parent, prefix=".audit.key.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):  # another process made it first: theirs is the key
            os.link(aside, path)
    finally:
        os.unlink(aside)
    log.info("made a new audit key in %s; keep a copy where the database is not", path)


def _read_key_file(path: Path) -> AuditKey:
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read the audit key {path}: {exc.strerror}") from None
    problem = audit_key_error(text)
    if problem:
        raise ConfigError(f"{path} does not hold an audit key: {problem}")
    if path.stat().st_mode & 0o077:
        log.warning("the audit key %s is readable by others than its owner; chmod 600 it", path)
    return AuditKey(bytes.fromhex(text.strip()))


def open_store(settings: Settings) -> SQLStore:
    if settings.user_profiling.storage == "postgresql":
        assert settings.database_url is not None
        return SQLStore.postgresql(settings.database_url, settings.database_schema)
    return SQLStore.sqlite(settings.sqlite_path)


def open_embedder(settings: Settings, store: SQLStore) -> Embedder:
    if settings.user_profiling.embedder == "openai":
        from ..store.embedders.openai import OpenAIEmbedder

        o = settings.openai
        return OpenAIEmbedder.connect(
            store.embedding_cache(), api_key=o.api_key.get_secret_value() if o.api_key else None,
            base_url=o.base_url, model=o.model, dimensions=o.dimensions, batch_size=o.batch_size,
            timeout=o.timeout_seconds, max_retries=o.max_retries)
    from ..store.embedders.hashing import HashingEmbedder

    return HashingEmbedder(settings.hashing.dim)


async def open_index(settings: Settings, embedder: Embedder) -> tuple[VectorIndex, bool]:
    """The similarity index, and whether it must be rebuilt from the database."""
    if settings.user_profiling.vector_store == "pinecone":
        from ..store.vectors.pinecone import PineconeIndex

        p = settings.pinecone
        index = await PineconeIndex.connect(
            dim=embedder.dim, api_key=p.api_key.get_secret_value() if p.api_key else None, host=p.host,
            index_name=p.index_name, namespace=p.namespace, timeout=p.timeout_seconds,
            consistency_window=p.consistency_window_seconds)
        return index, False  # the service keeps it; `mnky-profiles reindex` rebuilds on demand
    from ..store.vectors.local import LocalVectorIndex

    o = settings.local_index
    local = LocalVectorIndex.open(
        settings.vector_dir, embedder.dim, discard_mismatched=True, space=embedder.name,
        hnsw_threshold=o.hnsw_threshold, connectivity=o.connectivity, expansion_add=o.expansion_add,
        expansion_search=o.expansion_search, fsync=o.fsync)
    return local, local.was_reset or await local.count() == 0


async def bootstrap(settings: Settings, clock: Clock | None = None) -> Runtime:
    clock = clock or SystemClock()
    key, *previous_keys = audit_keys(settings)
    store = open_store(settings)
    closing: list[object] = [store]
    try:
        await store.migrate()
        pseudonyms = Pseudonymizer(await store.secret("pseudonyms"), store)
        audit = AuditLog(store, clock, pseudonyms, key, previous_keys)
        await audit.seal()
        embedder = open_embedder(settings, store)
        closing.insert(0, embedder)
        index, stale = await open_index(settings, embedder)
        closing.insert(0, index)
        profiling = settings.user_profiling
        half_life = settings.learning.half_life_days
        catalog = CatalogCache(store)
        vectors = UserVectors(embedder, half_life)
        upkeep = IndexUpkeep(store, vectors, index, clock)
        model = SharedModel(store, catalog, clock, half_life_days=half_life,
                            files=ModelFiles(settings.data_dir / "models"), name=f"items-{store.dialect}",
                            min_group=settings.privacy.min_group_size)
        if stale:
            await upkeep.rebuild()
        model.load()
    except BaseException:
        for part in closing:
            close = getattr(part, "close", None)
            if close is not None:
                await close()
        raise
    learner = PreferenceLearner(catalog, clock, half_life_days=half_life,
                                realtime=profiling.update_frequency == "realtime")
    # The order an erasure goes through them: see ``Runtime.holders``.
    holders: tuple[PersonalData, ...] = (audit, index, store, pseudonyms, model)
    requests = Requests(store, pseudonyms)
    usecases = UseCases(
        profiles=Profiles(store, learner, upkeep),
        events=Events(store, profiling.retention_days, learner, upkeep),
        consents=Consents(store, upkeep, model),
        discovery=Discovery(store, catalog, vectors, index, model, pseudonyms, half_life_days=half_life),
        learning=LearningRuns(store, learner, upkeep, model),
        model=model,
        upkeep=upkeep,
        requests=requests,
        rights=Rights(holders, pseudonyms, requests),
        retention=Retention(store, clock, profiling.retention_days, learner, upkeep, model),
    )
    return Runtime(
        settings=settings, store=store, clock=clock,
        gate=Gate(store, clock, profiling.anonymization), usecases=usecases,
        audit=audit, pseudonyms=pseudonyms, callers=callers_from(settings),
        embedder=embedder, index=index, holders=holders,
    )
