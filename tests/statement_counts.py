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
