"""SQLite through storage/sqlite_driver.py: one trip to aiosqlite's thread per statement,
none for a read-only session's end, and otherwise exactly what aiosqlite gives.

The trips are counted at aiosqlite's own queue (``Connection._execute``), the results and
errors checked through SQLAlchemy as the service uses it (ORM and Core).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.database import database_unavailable, make_engine, make_session_factory
from storage.models import Base, Recording, RecordingStatus, utcnow


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path}/driver.db")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@contextmanager
def trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The jobs handed to aiosqlite's thread meanwhile, by function name."""
    seen: list[str] = []
    original = aiosqlite.Connection._execute

    async def counting(self: aiosqlite.Connection, fn: Any, *args: Any, **kw: Any) -> Any:
        seen.append(getattr(fn, "__name__", repr(fn)))
        return await original(self, fn, *args, **kw)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counting)
    try:
        yield seen
    finally:
        monkeypatch.setattr(aiosqlite.Connection, "_execute", original)


def _recording(n: int) -> Recording:
    return Recording(
        id=f"00000000-0000-0000-0000-{n:012d}", call_id=f"call-{n}", kind="conversation",
        status=RecordingStatus.RECORDING.value, asterisk_name=f"pbxb-{n}",
        legal_basis="consent", retention_class="default", retention_days=30,
        format="wav", layout="mixed", started_at=utcnow(),
    )


async def test_each_statement_is_one_trip_and_a_read_only_session_ends_without_one(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:  # the pool's connection is made before counting
        await session.execute(text("SELECT 1"))
    with trips(monkeypatch) as seen:
        async with sessions() as session:
            session.add(_recording(1))
            await session.commit()  # ORM INSERT, COMMIT
        after_write = list(seen)
        async with sessions() as session:
            row = await session.get(Recording, "00000000-0000-0000-0000-000000000001")
            count = await session.scalar(select(func.count()).select_from(Recording))
        after_read = list(seen)
        async with sessions() as session:
            moved = (await session.execute(
                update(Recording).where(Recording.status == "recording")
                .values(status="finished").returning(Recording.id)
            )).scalars().all()
            missed = await session.execute(
                update(Recording).where(Recording.status == "recording").values(status="x")
            )
            await session.commit()
    assert row is not None and row.asterisk_name == "pbxb-1" and count == 1
    assert moved == ["00000000-0000-0000-0000-000000000001"]
    assert missed.rowcount == 0  # type: ignore[attr-defined]
    assert after_write == ["_run", "commit"]
    assert after_read == [*after_write, "_run", "_run"]  # no ROLLBACK sent for the reads
    assert seen == [*after_read, "_run", "_run", "commit"]


async def test_rows_rowcounts_many_rows_and_streaming_are_as_aiosqlite_gives(
    engine: AsyncEngine,
) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        session.add_all([_recording(n) for n in range(1, 6)])
        await session.commit()
    async with engine.begin() as conn:
        # executemany, and a multi-row UPDATE's rowcount
        await conn.execute(text("CREATE TABLE numbers (n INTEGER PRIMARY KEY, word TEXT)"))
        many = await conn.execute(
            text("INSERT INTO numbers (word) VALUES (:word)"),
            [{"word": w} for w in ("one", "two", "three")],
        )
        assert many.rowcount == 3
        single = await conn.execute(text("INSERT INTO numbers (word) VALUES ('four')"))
        assert single.lastrowid == 4
        result = await conn.execute(
            update(Recording).where(Recording.call_id.in_(["call-1", "call-2"]))
            .values(status="failed")
        )
        assert result.rowcount == 2
        names = (await conn.execute(
            select(Recording.asterisk_name).order_by(Recording.asterisk_name)
        )).scalars().all()
        assert names == [f"pbxb-{n}" for n in range(1, 6)]
        first_two = (await conn.execute(select(Recording.id).order_by(Recording.id))).fetchmany(2)
        assert len(first_two) == 2
        streamed = await conn.stream(select(Recording.id).order_by(Recording.id))
        assert len([r async for r in streamed]) == 5
        assert (await conn.execute(text("SELECT word FROM numbers WHERE n = 3"))).scalar() == (
            "three"
        )


async def test_errors_are_sqlalchemys_as_before(engine: AsyncEngine, tmp_path: Path) -> None:
    sessions = make_session_factory(engine)
    async with sessions() as session:
        session.add(_recording(1))
        await session.commit()
    with pytest.raises(IntegrityError):
        async with sessions() as session:
            session.add(_recording(1))
            await session.commit()
    # The failed transaction was rolled back: the connection works on.
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Recording)) == 1
    with pytest.raises(OperationalError) as caught:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT nothing FROM no_such_table"))
    assert "no_such_table" in str(caught.value)
    # A database file that cannot be opened is "the database away", as it was.
    gone = make_engine(f"sqlite+aiosqlite:///{tmp_path}")  # a folder, not a file
    try:
        with pytest.raises(OperationalError) as unopenable:
            async with gone.connect() as conn:
                await conn.execute(text("SELECT 1"))
        assert database_unavailable(unopenable.value)
    finally:
        await gone.dispose()
