"""SQLite through aiosqlite with one hand-off to its thread per statement, not four.

aiosqlite runs every call on the sqlite3 connection in its own thread, and SQLAlchemy's
adapter makes four such calls for a statement (open a cursor, execute, fetch the rows,
close the cursor) and one more for each COMMIT or ROLLBACK, also when there is nothing
to roll back. Each hand-off is a queue put, a thread wake-up, a GIL handover and a
call_soon_threadsafe back to the loop: on the service's ~44 statements a call that was
a large share of the database's CPU (bench/README.md, "Database work per call"). Here a
statement runs whole in one job on aiosqlite's thread (cursor, execute, rows, close),
and a COMMIT or ROLLBACK with no transaction open (a read-only session: the sqlite3
module begins one only before a write) is not sent at all.

Same dialect, same thread, same transactions and errors: only the number of trips to
the thread changes. Server-side cursors (``stream_results``) keep SQLAlchemy's own.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Sequence
from typing import Any

import aiosqlite
from sqlalchemy.connectors.asyncio import AsyncAdapt_dbapi_connection
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

# description, rows, rowcount, lastrowid
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """One statement, on aiosqlite's thread: everything SQLAlchemy will ask of it."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: str, rows: Sequence[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, rows)
        return None, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement makes one trip to aiosqlite's thread."""

    __slots__ = ("_arraysize", "_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_dbapi_connection) -> None:
        # No aiosqlite cursor is opened here (that was a trip of its own).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _async_soft_close(self) -> None:
        """Nothing is left open on the thread: the rows are here already."""

    def close(self) -> None:
        self._rows.clear()

    def _take(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        connection = self._connection
        try:
            outcome = await_(connection._execute(_run, connection._conn, operation, parameters))
        except Exception as error:  # mapped like SQLAlchemy's own cursor does
            self._adapt_connection._handle_exception(error)
        self._take(outcome)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        connection = self._connection
        try:
            outcome = await_(
                connection._execute(_run_many, connection._conn, operation, seq_of_parameters)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._take(outcome)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    _cursor_cls = OneTripCursor

    def _in_transaction(self) -> bool:
        # The flag SQLite itself keeps (sqlite3_get_autocommit); reading it is not a call
        # into the thread, and nothing runs on this connection while it is read.
        raw: sqlite3.Connection | None = self._connection._connection
        return raw is not None and raw.in_transaction

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()


class OneTripDbapi(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's DBAPI, handing out :class:`OneTripConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


def one_trip_dbapi() -> OneTripDbapi:
    """The ``module=`` for ``create_async_engine`` on a ``sqlite+aiosqlite`` URL."""
    return OneTripDbapi(aiosqlite, sqlite3)


__all__ = ["OneTripConnection", "OneTripCursor", "OneTripDbapi", "one_trip_dbapi"]
