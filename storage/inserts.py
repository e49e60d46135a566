"""``INSERT ... ON CONFLICT DO NOTHING`` on both backends: a row written once, in one statement.

A row that must exist exactly once (a call per Asterisk channel, a consent per call, the
chain head) used to be a SELECT and then an INSERT; on the conflict clause the database
decides in the insert itself, which is one round trip instead of two on the way every
call takes, and is also right when two writers race (the loser inserts nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import Insert


def insert_if_absent(
    session: AsyncSession, table: Table, conflict_on: Sequence[str] | None = None
) -> Insert:
    """An insert into ``table`` that does nothing where a row with the same
    ``conflict_on`` columns (any unique key when None) exists; add ``.returning()`` to
    learn whether it inserted."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_on)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_on)
    raise RuntimeError(f"unsupported database dialect {dialect}")  # SQLite and PostgreSQL only


__all__ = ["insert_if_absent"]
