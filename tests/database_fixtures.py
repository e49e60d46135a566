"""Fixtures for the data-layer tests: a fresh, empty database on SQLite and on PostgreSQL.

PostgreSQL gets one throw-away database per test session (``pbx_bridge_test_<random>``),
whose ``public`` schema is wiped before each test; it is dropped at the end of the session.
Import the fixtures by name into a test module (``from database_fixtures import ...``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.database import make_engine, make_session_factory, upgrade

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_HOST = "postgres@127.0.0.1:5432"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


async def _admin(statement: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _reset_schema(name: str) -> None:
    conn = await asyncpg.connect(f"postgresql://{PG_HOST}/{name}", timeout=5)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """The session's PostgreSQL database name; no server is a failure, never a skip."""
    name = f"pbx_bridge_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 not usable: {exc}")
    try:
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """An empty PostgreSQL database (no tables), for tests that need PostgreSQL itself."""
    asyncio.run(_reset_schema(pg_database))
    return f"postgresql+asyncpg://{PG_HOST}/{pg_database}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables) on each backend.

    Synchronous on purpose: it runs its own short loop, outside the test's.
    """
    if request.param == "sqlite":
        # A nested folder: make_engine must create it.
        return f"sqlite+aiosqlite:///{tmp_path}/var/db/pbx-bridge.db"
    name: str = request.getfixturevalue("pg_database")
    asyncio.run(_reset_schema(name))
    return f"postgresql+asyncpg://{PG_HOST}/{name}"


@pytest.fixture
async def migrated_url(db_url: str) -> str:
    await upgrade(db_url)
    return db_url


@pytest.fixture
async def sessions(migrated_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory on a migrated database, for code that opens its own sessions."""
    engine = make_engine(migrated_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def session(migrated_url: str) -> AsyncIterator[AsyncSession]:
    engine = make_engine(migrated_url)
    try:
        async with make_session_factory(engine)() as session:
            yield session
    finally:
        await engine.dispose()
