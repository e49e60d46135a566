"""Engines, sessions and the schema's revision: the service refuses to run on a stale schema.

Migrations are never applied silently at start: an operator runs ``pbx-bridge db upgrade``
(or calls :func:`upgrade`), so a schema change is a deliberate step that can be backed up
before. The Alembic scripts live in the top-level ``migrations`` package, which covers the
tables of both layers; this module only locates it, it imports nothing from ``pbx_bridge``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import migrations
from storage.sqlite_driver import one_trip_dbapi

SQLITE_BUSY_TIMEOUT_MS = 5000


class DatabaseError(RuntimeError):
    """Base of the database problems an operator can fix; messages never carry a password."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or opened."""


class DatabaseNotMigrated(DatabaseError):
    """The schema is not at the revision this code expects."""

    def __init__(self, url: str, current: str | None, head: str) -> None:
        state = f"at revision {current}" if current else "empty (no schema)"
        super().__init__(f"database {url} is {state}; expected {head}: run `pbx-bridge db upgrade`")
        self.url = url
        self.current = current
        self.head = head


def database_unavailable(exc: BaseException) -> bool:
    """The database is away (unreachable, restarting, or it dropped the connection):
    something to wait out and reconcile after, unlike a constraint violation or a bug.

    The one definition, used wherever the service decides "the database is away". A plain
    ``OSError`` is not it: a full or unwritable spool is a disk problem
    (``storage.errors.DiskError``), and must not send a caller to the dialplan fallback.
    The driver's own ``OSError`` on connecting (asyncpg's ConnectionRefusedError, a
    timeout, a name that does not resolve) reaches here as ``DatabaseUnavailable``: every
    engine of ``make_engine`` converts it as it connects.
    """
    if isinstance(exc, DatabaseUnavailable | sa_exc.TimeoutError):  # pool checkout timeout
        return True
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    # asyncpg's "connection was closed in the middle of operation" arrives as the generic
    # DBAPIError, and connection_invalidated is only as good as the driver's view of its
    # socket at that instant; the SQLSTATE class says it outright.
    return exc.connection_invalidated or _sqlstate(exc).startswith(UNAVAILABLE_SQLSTATES)


# SQLSTATE classes of a server that is away: 08 connection exception, 57P operator
# intervention (admin or crash shutdown, cannot connect now).
UNAVAILABLE_SQLSTATES = ("08", "57P")


def _sqlstate(exc: DBAPIError) -> str:
    """The SQLSTATE the driver reported, on the adapted error or the one it wraps."""
    seen: BaseException | None = exc.orig
    while seen is not None:
        code = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(code, str):
            return code
        seen = seen.__cause__
    return ""


def safe_url(url: str) -> str:
    """The URL as it may be printed: with the password replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _set_sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # Foreign keys are off by default in SQLite; WAL lets the CLI read while the
    # service writes; busy_timeout turns a brief lock into a wait instead of an error.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _connect_or_unavailable(safe: str) -> Callable[..., Any]:
    """A ``do_connect`` hook: the driver's socket errors become ``DatabaseUnavailable``.

    SQLAlchemy wraps only the driver's DBAPI errors; asyncpg's ConnectionRefusedError
    (PostgreSQL down, a proxy cut) or its connect timeout come through as a bare
    ``OSError``, indistinguishable from a disk error further up.
    """

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"cannot connect to database {safe}: {error_reason(exc)}"
            ) from exc

    return connect


def _ping_asyncpg(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection answers before it is handed out, or the pool replaces it (it
    may have died idle: a server restart, a proxy's idle timeout). ``;`` outside a
    transaction: one round trip."""
    import asyncpg  # type: ignore[import-untyped]

    try:
        dbapi_connection.run_async(lambda raw: raw.fetchrow(";"))
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
            asyncpg.InternalClientError) as exc:
        # The pool discards this connection and checks out (connects) another. (A
        # connection the server ended while idle can also leave asyncpg's protocol in a
        # state it reports as InternalClientError.)
        raise sa_exc.DisconnectionError(error_reason(exc)) from exc


def make_engine(url: str) -> AsyncEngine:
    """An engine for ``sqlite+aiosqlite`` or ``postgresql+asyncpg`` URLs.

    Runs at start-up, before the service's loop is busy, so creating the SQLite
    folder synchronously here is acceptable.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # One trip to aiosqlite's thread per statement (storage/sqlite_driver.py).
        engine = create_async_engine(url, module=one_trip_dbapi())
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    else:
        # Every checkout is checked, as pool_pre_ping would, but in one trip:
        # pool_pre_ping on asyncpg is three (BEGIN, the ping, ROLLBACK), which on a
        # loaded machine cost the console's call list 6 of a request's 17 waits.
        engine = create_async_engine(url)
        event.listen(engine.sync_engine.pool, "checkout", _ping_asyncpg)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable(safe_url(url)))
    return engine


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # Rows outlive their commit: the flow reads them after each short transaction.
    return async_sessionmaker(engine, expire_on_commit=False)


async def outside_transaction(session: AsyncSession) -> None:
    """Each statement ``session`` sends from now on commits on its own, for work that needs
    no atomicity (one lookup, a read-only page): on PostgreSQL no BEGIN before it and no
    ROLLBACK after, two of a lookup's three round trips. Call it before the session's
    first statement. SQLite sends neither for a read already (storage/sqlite_driver.py)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config that needs no ini file (works from an installed package)."""
    config = Config()
    config.set_main_option("script_location", str(migrations.SCRIPT_LOCATION))
    if url is not None:
        # In attributes, not the ini option: configparser would choke on % in passwords.
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise DatabaseError("the migrations package has no revisions")
    return head


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _current_on(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def error_reason(exc: BaseException) -> str:
    """The first line of what the driver (or the error itself) said, for a one-line log."""
    cause = getattr(exc, "orig", None) or exc
    text = str(cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


async def _connect(engine: AsyncEngine) -> AsyncConnection:
    """Open a connection, turning every way of not getting one into DatabaseUnavailable."""
    try:
        return await engine.connect()
    except (DBAPIError, sqlite3.Error) as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise DatabaseUnavailable(f"cannot connect to database {url}: {error_reason(exc)}") from exc


async def upgrade(url: str) -> None:
    """Bring the schema to head; safe to call from inside a running event loop."""
    engine = make_engine(url)
    config = alembic_config(url)
    try:
        connection = await _connect(engine)
        try:
            await connection.run_sync(_upgrade_on, config)
            await connection.commit()
        finally:
            await connection.close()
    finally:
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The schema's revision, or None for a database Alembic never touched."""
    connection = await _connect(engine)
    try:
        return await connection.run_sync(_current_on)
    finally:
        await connection.close()


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise unless the schema is exactly at head, so the service never runs on a guess."""
    current = await current_revision(engine)
    head = head_revision()
    if current != head:
        raise DatabaseNotMigrated(engine.url.render_as_string(hide_password=True), current, head)


__all__ = [
    "DatabaseError",
    "DatabaseNotMigrated",
    "DatabaseUnavailable",
    "alembic_config",
    "current_revision",
    "database_unavailable",
    "ensure_migrated",
    "error_reason",
    "head_revision",
    "make_engine",
    "make_session_factory",
    "outside_transaction",
    "safe_url",
    "upgrade",
]
