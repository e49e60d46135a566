"""Counting the SQL statements code sends, by kind, for the tests that pin them down.

The database is a large share of the CPU per call (bench/README.md), so the hot paths'
statement counts are asserted exactly (tests/test_storage_statements.py,
tests/test_journal_statements.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker


def statement_kind(statement: str) -> str:
    """``SELECT recordings``, ``UPDATE recordings``, ``INSERT audit_log``, ..."""
    words = statement.split()
    verb = words[0].upper()
    lowered = [w.strip('"(').lower() for w in words]
    anchor = {"SELECT": "from", "INSERT": "into", "DELETE": "from"}.get(verb)
    if anchor is None:  # UPDATE <table>
        return f"{verb} {lowered[1]}"
    return f"{verb} {lowered[lowered.index(anchor) + 1]}" if anchor in lowered else verb


@contextmanager
def counted(sessions: async_sessionmaker[AsyncSession]) -> Iterator[Counter[str]]:
    """Statements by kind, and ``COMMIT``s, sent through ``sessions``' engine meanwhile."""
    seen: Counter[str] = Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen[statement_kind(statement)] += 1

    def count_commit(_conn: Any) -> None:
        seen["COMMIT"] += 1

    engine = sessions.kw["bind"].sync_engine
    event.listen(engine, "before_cursor_execute", count)
    event.listen(engine, "commit", count_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)
        event.remove(engine, "commit", count_commit)


@contextmanager
def postgres_round_trips() -> Iterator[list[str]]:
    """Every request asyncpg sends PostgreSQL and waits for meanwhile, in order: a
    statement (its first word and table, as :func:`statement_kind`), ``BEGIN``,
    ``COMMIT``, ``ROLLBACK``, ``PREPARE`` (a statement new to the connection) or ``PING``
    (the pool's liveness check, ``;``). On a loaded machine each is a wait for the
    server's turn, whatever it costs to execute: these are what a request's time grows
    with (bench/README.md, the console's call list)."""
    import asyncpg  # type: ignore[import-untyped]
    from asyncpg.prepared_stmt import PreparedStatement  # type: ignore[import-untyped]

    trips: list[str] = []

    def kind(query: str) -> str:
        words = query.strip().rstrip(";").split()
        if not words:
            return "PING"
        verb = words[0].upper()
        return verb if verb in ("BEGIN", "COMMIT", "ROLLBACK") else statement_kind(query)

    originals: list[tuple[type, str, Any]] = []

    def wrap(owner: type, name: str, label: Any) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))

        async def counted_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            trips.append(label(self, args))
            return await original(self, *args, **kwargs)

        setattr(owner, name, counted_call)

    wrap(asyncpg.Connection, "execute", lambda _s, a: kind(a[0]))
    wrap(asyncpg.Connection, "fetchrow", lambda _s, a: kind(a[0]))
    wrap(asyncpg.Connection, "fetch", lambda _s, a: kind(a[0]))
    wrap(asyncpg.Connection, "prepare", lambda _s, a: "PREPARE")
    for name in ("fetch", "fetchrow", "executemany", "cursor"):
        wrap(PreparedStatement, name, lambda s, _a: kind(s.get_query()))
    try:
        yield trips
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
