"""Helpers for the audit trail tests: tampering the way an attacker with database access
would, and throw-away PostgreSQL roles.

Tampering lifts the append-only protection first, as only someone beyond the service's
rights can: on PostgreSQL the superuser turns off ordinary triggers for its session
(``session_replication_role = replica``; a superuser ignores the revoked rights anyway);
on SQLite whoever can write the file drops the triggers.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.database import make_engine
from storage.models import AuditEntry

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLITE_TRIGGERS = (
    "audit_log_no_update",
    "audit_log_no_delete",
    "audit_log_no_replace",
    "audit_head_no_rewind",
    "audit_head_no_delete",
)
# Exchange two entries' places: what "reordering" looks like in SQL.
SWAP_2_AND_4 = (
    "UPDATE audit_log SET seq = -2 WHERE seq = 2",
    "UPDATE audit_log SET seq = 2 WHERE seq = 4",
    "UPDATE audit_log SET seq = 4 WHERE seq = -2",
)


async def tamper(url: str, *statements: str) -> None:
    """Run ``statements`` against the audit tables with the protection lifted."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SET LOCAL session_replication_role = replica"))
            else:
                for name in SQLITE_TRIGGERS:
                    await conn.execute(text(f"DROP TRIGGER IF EXISTS {name}"))
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def pg_admin(*statements: str, database: str = "postgres") -> None:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}", timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@dataclass(frozen=True)
class PgRoles:
    database: str
    owner: str  # owns the database and runs the migrations
    service: str  # the service's role; the owner itself in the one-role set-up

    def url(self, role: str) -> str:
        return f"postgresql+asyncpg://{role}@127.0.0.1:5432/{self.database}"


@asynccontextmanager
async def pg_roles(*, separate_service_role: bool) -> AsyncIterator[PgRoles]:
    """A fresh database owned by a new non-superuser login role (trust auth), and
    optionally a second role for the service, given table rights the way a DBA would
    (default privileges of the owner), dropped afterwards."""
    tag = uuid.uuid4().hex[:10]
    roles = PgRoles(
        database=f"pbx_bridge_roles_{tag}",
        owner=f"pbxb_owner_{tag}",
        service=f"pbxb_service_{tag}" if separate_service_role else f"pbxb_owner_{tag}",
    )
    created: list[str] = [roles.owner]
    await pg_admin(f'CREATE ROLE "{roles.owner}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE')
    if separate_service_role:
        await pg_admin(f'CREATE ROLE "{roles.service}" LOGIN NOSUPERUSER')
        created.append(roles.service)
    try:
        await pg_admin(f'CREATE DATABASE "{roles.database}" OWNER "{roles.owner}"')
        if separate_service_role:
            conn = await asyncpg.connect(
                f"postgresql://{roles.owner}@127.0.0.1:5432/{roles.database}", timeout=5
            )
            try:
                await conn.execute(
                    f"ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT, UPDATE, DELETE "
                    f'ON TABLES TO "{roles.service}"'
                )
            finally:
                await conn.close()
        yield roles
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{roles.database}" WITH (FORCE)')
        for role in reversed(created):
            await pg_admin(f'DROP ROLE IF EXISTS "{role}"')


async def run_as(url: str, statements: Sequence[str]) -> list[str]:
    """Each statement in its own transaction; the error text of each refused one, or ''."""
    outcomes: list[str] = []
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        for statement in statements:
            try:
                await conn.execute(statement)
            except asyncpg.PostgresError as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
            else:
                outcomes.append("")
    finally:
        await conn.close()
    return outcomes


async def entries_of(sessions: async_sessionmaker[AsyncSession], action: str) -> list[AuditEntry]:
    """The trail's entries of one action, in the chain's order: what a test checks was
    audited (who, what, its details)."""
    async with sessions() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
        )
        return list(rows.all())
