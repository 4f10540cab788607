"""Migrations build exactly the schema the code declares, on SQLite and PostgreSQL, and run both ways."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from mnky_profiles.server.cli import main
from mnky_profiles.store import migrations
from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.store import SQLStore

from ..conftest import PG_URL, pg_schema

pytestmark = pytest.mark.anyio

StoreFactory = Callable[[], SQLStore]
HEAD = migrations.head()


@pytest.fixture
async def location(backend: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Settings for a fresh, empty database (a new SQLite file or a new PostgreSQL schema)."""
    if backend == "postgresql":
        async with pg_schema() as name:
            yield {"user_profiling": {"storage": "postgresql"}, "database_url": PG_URL, "database_schema": name}
    else:
        yield {"data_dir": str(tmp_path / "data")}


def open_store(location: dict[str, Any]) -> SQLStore:
    if "database_url" in location:
        return SQLStore.postgresql(location["database_url"], schema=location["database_schema"])
    return SQLStore.sqlite(Path(location["data_dir"]) / "mnky-profiles.db")


@pytest.fixture
async def store(location: dict[str, Any]) -> AsyncIterator[SQLStore]:
    s = open_store(location)
    try:
        yield s
    finally:
        await s.close()


def differences(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
    return list(compare_metadata(context, schema.metadata))


def table_names(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def test_the_revisions_form_one_line_to_a_single_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [HEAD] and HEAD is not None
    chain = list(scripts.walk_revisions())  # head first, down to the base
    assert chain[-1].down_revision is None
    assert all(isinstance(r.down_revision, str | None) for r in chain)  # no merges, no branches
    files = sorted(p.stem for p in (migrations.HERE / "versions").glob("*.py") if p.name != "__init__.py")
    assert len(files) == len(chain), "every file in versions/ is a revision in the chain"


async def test_a_fresh_database_migrates_to_exactly_the_declared_schema(store: SQLStore) -> None:
    assert await store.schema_revision() is None
    await store.migrate()
    assert await store.schema_revision() == HEAD
    assert await store.db.run_sync(differences) == []
    assert await store.db.run_sync(table_names) == set(schema.metadata.tables)


async def test_the_comparison_sees_a_drifted_schema(store: SQLStore) -> None:
    """The check above is not vacuous: a column the migrations lack shows up as a difference."""
    await store.migrate()
    drifted = sa.MetaData(naming_convention=schema.metadata.naming_convention)
    for table in schema.metadata.tables.values():
        table.to_metadata(drifted)
    sa.Table("profiles", drifted, sa.Column("nickname", sa.String(32)), extend_existing=True)

    def compare(conn: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(conn), drifted))

    diffs = await store.db.run_sync(compare)
    assert [d[0] for d in diffs] == ["add_column"] and diffs[0][3].name == "nickname"


async def test_downgrade_to_base_and_upgrade_again(store: SQLStore) -> None:
    await store.migrate()
    await store.db.run_sync(lambda conn: migrations.downgrade(conn, "base"))
    assert await store.schema_revision() is None
    assert await store.db.run_sync(table_names) == set()
    await store.migrate()
    assert await store.schema_revision() == HEAD
    assert await store.db.run_sync(differences) == []


async def test_every_revision_steps_down_and_up_one_at_a_time(store: SQLStore) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations.HERE))
    revisions = [r.revision for r in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))]
    await store.migrate()
    for expected in [*reversed(revisions[:-1]), None]:
        await store.db.run_sync(lambda conn: migrations.downgrade(conn, "-1"))
        assert await store.schema_revision() == expected
    assert await store.db.run_sync(table_names) == set()
    for expected in revisions:
        await store.db.run_sync(lambda conn: migrations.upgrade(conn, "+1"))
        assert await store.schema_revision() == expected
    assert await store.db.run_sync(differences) == []


async def test_profiles_from_before_subject_keys_keep_their_audit_names_until_erased(store: SQLStore) -> None:
    """Revision 0004 gives every profile a key of its own and keeps the name the server-wide key gave it, so the
    subject's earlier audit entries stay theirs; the server-wide key is replaced, so after erasure nobody can work
    that name out again."""
    from mnky_profiles.privacy.audit import AuditKey, AuditLog
    from mnky_profiles.privacy.pseudonyms import Pseudonymizer

    from ..conftest import FakeClock

    await store.db.run_sync(lambda conn: migrations.upgrade(conn, "0003"))
    old_key = await store.secret("pseudonyms")
    at = datetime(2024, 1, 1, tzinfo=UTC)
    old_name = "s_" + hmac.new(old_key, b"subject\x1fana", hashlib.sha256).hexdigest()[:32]  # how 0003 named her

    def before(conn: Connection) -> None:
        conn.execute(schema.profiles.insert(), {"user_id": "ana", "created_at": at, "updated_at": at})
        conn.execute(sa.text("INSERT INTO audit_log (seq, at, caller, action, subject, purpose, released, withheld, "
                             "outcome, prev_hash, hash) VALUES (1, :at, 'c', 'tool:get_profile', :s, 'service', "
                             "'[]', '[]', 'ok', :z, :z)"), {"at": at, "s": old_name, "z": "0" * 64})

    await store.db.run_sync(before)
    await store.migrate()
    new_key = await store.secret("pseudonyms")
    assert new_key != old_key
    pseudonyms = Pseudonymizer(new_key, store)
    audit = AuditLog(store, FakeClock(), pseudonyms, AuditKey(b"k" * 32))
    found = [e async for e in audit.entries("ana")]
    assert [e.entry.subject for e in found] == [old_name]
    await audit.record(caller="c", action="tool:get_profile", subject="ana", purpose="service", outcome="ok")
    assert len([e async for e in audit.entries("ana")]) == 2  # the old name and the new, both hers
    await store.erase("ana")
    await pseudonyms.erase("ana")  # the key this process keeps in memory goes with it (holders erase in order)
    assert [e async for e in audit.entries("ana")] == []
    assert len([e async for e in audit.entries()]) == 2  # kept, and nobody's any more


async def test_requests_arrive_empty_beside_existing_data_and_leave_with_a_downgrade(store: SQLStore) -> None:
    """Revision 0006 adds the requests table (with a nullable receipt) and touches nothing else; a request's row
    has no foreign key to its profile, so it can outlive the subject's erasure."""
    await store.db.run_sync(lambda conn: migrations.upgrade(conn, "0005"))
    at = datetime(2024, 1, 1, tzinfo=UTC)
    await store.db.run_sync(lambda conn: conn.execute(
        schema.profiles.insert(), {"user_id": "ana", "created_at": at, "updated_at": at}))
    assert "requests" not in await store.db.run_sync(table_names)
    await store.db.run_sync(lambda conn: migrations.upgrade(conn, "0006"))

    def columns(conn: Connection) -> dict[str, bool]:
        return {c["name"]: bool(c["nullable"]) for c in sa.inspect(conn).get_columns("requests")}

    found = await store.db.run_sync(columns)
    assert found["receipt"] and found["user_id"] and not found["subject"] and not found["due_at"]
    assert await store.db.run_sync(lambda conn: sa.inspect(conn).get_foreign_keys("requests")) == []
    assert await store.db.run_sync(lambda conn: conn.execute(sa.text("SELECT count(*) FROM profiles")).scalar()) == 1
    await store.db.run_sync(lambda conn: migrations.downgrade(conn, "0005"))
    assert "requests" not in await store.db.run_sync(table_names)


async def test_migrating_twice_changes_nothing(store: SQLStore) -> None:
    await store.migrate()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    async with store.write() as repo:
        await repo.create_profile("u1", at)
    before = await store.db.run_sync(table_names)
    await store.migrate()
    assert await store.schema_revision() == HEAD
    assert await store.db.run_sync(table_names) == before
    assert await store.db.run_sync(differences) == []
    async with store.read() as repo:
        assert await repo.profile_exists("u1")


async def test_a_reopened_store_migrates_as_a_no_op(location: dict[str, Any]) -> None:
    first = open_store(location)
    try:
        await first.migrate()
        assert await first.secret("k")
    finally:
        await first.close()
    second = open_store(location)
    try:
        await second.migrate()
        assert await second.schema_revision() == HEAD
    finally:
        await second.close()


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("MNKY_"):
            monkeypatch.delenv(name)


def write_config(tmp_path: Path, location: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(location), encoding="utf-8")
    return path


@pytest.mark.usefixtures("clean_environment")
async def test_the_cli_migrate_prints_the_head_revision(
        location: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, location)
    # ``main`` runs its own event loop, so it runs in a worker thread here.
    import anyio.to_thread

    for _ in range(2):  # the second run finds nothing to do and says the same
        assert await anyio.to_thread.run_sync(main, ["migrate", "--config", str(config)]) == 0
        assert capsys.readouterr().out.strip() == f"schema at revision {HEAD}"
    store = open_store(location)
    try:
        assert await store.schema_revision() == HEAD
        assert await store.db.run_sync(differences) == []
    finally:
        await store.close()


def test_the_console_script_migrates(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("mnky-profiles")
    assert script.exists(), "the mnky-profiles console script is installed next to the interpreter"
    config = write_config(tmp_path, {"data_dir": str(tmp_path / "data")})
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MNKY_")}
    done = subprocess.run([str(script), "migrate", "--config", str(config)], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"schema at revision {HEAD}"
    assert (tmp_path / "data" / "mnky-profiles.db").is_file()
