"""Reading a query's plan on SQLite and PostgreSQL, for tests that hold queries to an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, text
from sqlalchemy.ext.asyncio import AsyncSession


async def query_plan(session: AsyncSession, query: Select[Any]) -> str:
    """EXPLAIN QUERY PLAN's details (SQLite) or EXPLAIN's lines (PostgreSQL), one a line."""
    dialect = session.bind.dialect
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    if dialect.name == "sqlite":
        lines = (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()
        return "\n".join(str(line[-1]) for line in lines)
    return "\n".join(str(line[0]) for line in (await session.execute(text(f"EXPLAIN {sql}"))))


async def prefer_indexes(session: AsyncSession) -> bool:
    """On PostgreSQL, rule out whole-table and bitmap scans; True if it is PostgreSQL.

    A test table is small enough to be cheaper to scan whole; the question is which index
    the planner takes when it takes one, as it does at a million rows.
    """
    if session.bind.dialect.name != "postgresql":
        return False
    await session.execute(text("SET enable_seqscan = off"))
    await session.execute(text("SET enable_bitmapscan = off"))
    return True
