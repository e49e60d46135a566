"""Engines, migrations and the start-up schema check, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import errno
import os
import sys
from pathlib import Path

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from database_fixtures import db_url, migrated_url, pg_database
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from statement_counts import postgres_round_trips
from tcp_proxy import CuttableProxy

# Registers the call tables, and the users, tokens and sessions tables, on Base.metadata.
import pbx_bridge.calls.models
import pbx_bridge.users.models  # noqa: F401
from storage.database import (
    DatabaseNotMigrated,
    DatabaseUnavailable,
    current_revision,
    database_unavailable,
    ensure_migrated,
    head_revision,
    make_engine,
    safe_url,
    upgrade,
)
from storage.errors import DiskError
from storage.models import Base

__all__ = ["db_url", "migrated_url", "pg_database"]  # fixtures, imported for pytest

REPO = Path(__file__).resolve().parent.parent
EXPECTED_TABLES = {
    "alembic_version",
    "audit_head",
    "audit_log",
    "do_not_record",
    "dsar_requests",
    "calls",
    "consents",
    "data_keys",
    "extensions",
    "recording_copies",
    "recordings",
    "retention_classes",
    "routes",
    "tombstones",
    "users",
    "api_tokens",
    "web_sessions",
    "share_links",
    "dsar_approvals",
    "recording_pauses",
    "call_transfers",
    "ring_groups",
    "call_commands",
    "outbound_routes",
    "campaigns",
}


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_upgrade_from_empty_creates_every_table_at_head(db_url: str) -> None:
    await upgrade(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == EXPECTED_TABLES
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_migrations_match_the_models_exactly(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
    finally:
        await engine.dispose()


async def test_upgrade_twice_is_harmless(migrated_url: str) -> None:
    await upgrade(migrated_url)
    engine = make_engine(migrated_url)
    try:
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_ensure_migrated_refuses_an_empty_database_then_passes(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with pytest.raises(DatabaseNotMigrated) as caught:
            await ensure_migrated(engine)
        message = str(caught.value)
        assert "empty" in message
        assert head_revision() in message
        assert "pbx-bridge db upgrade" in message
        assert safe_url(db_url) in message
        assert caught.value.current is None

        await upgrade(db_url)
        await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def test_ensure_migrated_names_a_stale_revision(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = 'old1'"))
        with pytest.raises(DatabaseNotMigrated, match="at revision old1; expected"):
            await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def test_upgrade_works_inside_a_running_loop_alongside_other_tasks(db_url: str) -> None:
    # The service may call upgrade() from its own loop; env.py must not start a second one.
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    try:
        await upgrade(db_url)
    finally:
        task.cancel()
    assert ticks > 0
    engine = make_engine(db_url)
    try:
        await ensure_migrated(engine)
    finally:
        await engine.dispose()


async def test_sqlite_engine_creates_its_folder_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.db"
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
        assert path.parent.is_dir()
    finally:
        await engine.dispose()


async def test_unreachable_postgres_is_reported_without_password() -> None:
    engine = make_engine("postgresql+asyncpg://admin:s3cret@127.0.0.1:1/pbx")
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await ensure_migrated(engine)
    finally:
        await engine.dispose()
    message = str(caught.value)
    assert "cannot connect" in message
    assert "admin:***@127.0.0.1:1/pbx" in message
    assert "s3cret" not in message


@pytest.mark.postgres
async def test_missing_postgres_database_is_unavailable(pg_database: str) -> None:
    engine = make_engine("postgresql+asyncpg://postgres@127.0.0.1:5432/pbx_bridge_no_such_db")
    try:
        with pytest.raises(DatabaseUnavailable, match="does not exist"):
            await current_revision(engine)
    finally:
        await engine.dispose()


@pytest.mark.postgres
async def test_postgres_away_is_database_unavailable_through_the_session(
    pg_database: str,
) -> None:
    """What asyncpg really raises through SQLAlchemy, with PostgreSQL behind a proxy the
    test cuts: mid-query an invalidated DBAPIError; on connecting, asyncpg's bare
    ConnectionRefusedError, which the engine turns into DatabaseUnavailable so that a
    plain OSError is never taken for the database."""
    proxy = CuttableProxy("127.0.0.1", 5432)
    await proxy.start()
    engine = make_engine(f"postgresql+asyncpg://postgres:s3cret@127.0.0.1:{proxy.port}/"
                         f"{pg_database}")
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT 1")) == 1
            await proxy.cut()
            with pytest.raises(DBAPIError) as mid_query:
                await connection.scalar(text("SELECT 1"))
        assert mid_query.value.connection_invalidated
        assert database_unavailable(mid_query.value)
        with pytest.raises(DatabaseUnavailable) as connecting:
            async with engine.connect() as connection:
                await connection.scalar(text("SELECT 1"))
        assert isinstance(connecting.value.__cause__, ConnectionRefusedError)
        assert "cannot connect to database" in str(connecting.value)
        assert "s3cret" not in str(connecting.value)
        assert database_unavailable(connecting.value)
        await proxy.restore()
        async with engine.connect() as connection:  # back: the pool reconnects
            assert await connection.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()
        await proxy.close()


@pytest.mark.postgres
async def test_a_pooled_connection_that_died_idle_is_replaced_at_checkout_in_one_trip(
    pg_database: str,
) -> None:
    """The pool checks each connection as it hands it out (the server may have ended it
    while it sat idle: a restart, an idle timeout) and replaces a dead one, so the query
    never sees it; the check is one round trip (``;``), not pool_pre_ping's three
    (BEGIN, ``;``, ROLLBACK on asyncpg)."""
    engine = make_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}")
    try:
        async with engine.connect() as connection:
            first = await connection.scalar(text("SELECT pg_backend_pid()"))
        with postgres_round_trips() as trips:
            async with engine.connect() as connection:
                assert await connection.scalar(text("SELECT pg_backend_pid()")) == first
        assert trips == ["PING", "BEGIN", "SELECT", "ROLLBACK"]
        admin = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{pg_database}")
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        async with engine.connect() as connection:  # the dead one is replaced unseen
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != first
    finally:
        await engine.dispose()


def _adapted(error: Exception) -> Exception:
    """As SQLAlchemy's asyncpg adapter raises it: its own Error, from the driver's."""
    adapted = Exception(str(error))
    adapted.__cause__ = error
    return adapted


def test_the_database_away_is_one_definition_and_a_file_error_is_not_it() -> None:
    refused = ConnectionRefusedError(111, "Connect call failed")
    away = [
        DatabaseUnavailable("cannot connect"),
        sa_exc.OperationalError("SELECT 1", {}, refused),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection is closed")),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True),
        sa_exc.TimeoutError("QueuePool limit reached, connection timed out"),
        # asyncpg's closed-mid-operation, adapted to the generic Error and not marked
        # invalidated (as seen under load): its SQLSTATE 08003 says it.
        sa_exc.DBAPIError("SELECT 1", {}, _adapted(asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation")), connection_invalidated=False),
        sa_exc.DBAPIError("SELECT 1", {}, _adapted(asyncpg.exceptions.AdminShutdownError(
            "terminating connection due to administrator command")),
            connection_invalidated=False),
    ]
    not_away = [
        OSError(errno.ENOSPC, "No space left on device", "/var/spool/pbx-bridge/x.wav"),
        OSError(errno.EROFS, "Read-only file system"),
        PermissionError(errno.EACCES, "Permission denied"),
        NotADirectoryError(errno.ENOTDIR, "Not a directory"),
        refused,  # a bare socket error is not the database's unless the engine says so
        DiskError("spool", "/var/spool/pbx-bridge", OSError(errno.ENOSPC, "No space")),
        sa_exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        sa_exc.DBAPIError("SELECT 1", {}, Exception("syntax"), connection_invalidated=False),
        sa_exc.DBAPIError("SELECT 1", {}, _adapted(asyncpg.exceptions.UndefinedTableError(
            "relation does not exist")), connection_invalidated=False),
        KeyError("a bug"),
    ]
    assert [database_unavailable(exc) for exc in away] == [True] * len(away)
    assert [database_unavailable(exc) for exc in not_away] == [False] * len(not_away)


def test_safe_url_hides_the_password() -> None:
    assert safe_url("postgresql+asyncpg://u:p%40ss@h/db") == "postgresql+asyncpg://u:***@h/db"
    assert safe_url("sqlite+aiosqlite:///./var/x.db") == "sqlite+aiosqlite:///./var/x.db"


async def _alembic_cli(url: str, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PBX_BRIDGE_DATABASE__URL": url}
    env.pop("PBX_BRIDGE_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "-c",
        str(REPO / "migrations" / "alembic.ini"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_alembic_cli_upgrades_and_downgrades_through_the_same_env(db_url: str) -> None:
    code, out = await _alembic_cli(db_url, "upgrade", "head")
    assert code == 0, out
    engine = make_engine(db_url)
    try:
        await ensure_migrated(engine)
        code, out = await _alembic_cli(db_url, "downgrade", "base")
        assert code == 0, out
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == {"alembic_version"}
        assert await current_revision(engine) is None
    finally:
        await engine.dispose()
