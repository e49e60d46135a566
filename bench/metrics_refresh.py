"""The metrics refresh over 1,000,000 recordings: ``storage.backlog.read_backlog`` (what the
service runs every ``[metrics] refresh_interval_s``) against the one query it replaces.

The table is what years of service leave: 60 % deleted long ago (their retain_until kept,
all in the past), 40 % stored and not yet due, and a backlog of 0.1 % (finished, spooled,
prepared, deleting; each overdue by hours) with a pending copy per prepared recording.

- **refresh**: ``read_backlog``: counts by status, pending and dead copies per backend,
  the oldest unstored, and the purge lag one status at a time along
  ``ix_recordings_status_retain_until``.
- **baseline**: the purge lag alone, asked as the purge asked for its pages (every
  deletable status at once, oldest retain_until first): the planner walks
  ``ix_recordings_retain_until`` past every deleted recording before the first live one.

Both must find the same oldest overdue retain_until, and the refresh exactly the counts
the table was built with.

    .venv/bin/python bench/metrics_refresh.py [--recordings N] [--repeat R] [--quick]
                                              [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BenchCheckFailed, bench_database, is_postgres, work_folder

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CHUNK = 50_000
BACKLOG_STATUSES = ("finished", "spooled", "prepared", "deleting")
RECORDING_COLUMNS = ("id", "call_id", "kind", "status", "asterisk_name", "legal_basis",
                     "retention_class", "retention_days", "retain_until", "format", "layout",
                     "started_at", "finished_at")
COPY_COLUMNS = ("id", "recording_id", "backend", "key", "status", "encrypted", "attempts",
                "created_at")


def _status_of(i: int) -> str:
    if i % 1000 == 7:
        return BACKLOG_STATUSES[(i // 1000) % len(BACKLOG_STATUSES)]
    return "deleted" if i % 10 < 6 else "stored"


def _rows(count: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    for i in range(count):
        rid = f"{i:08x}-0000-4000-9000-{i:012x}"
        status = _status_of(i)
        if status == "deleted":
            until = NOW - timedelta(days=1 + i % 900)
        elif status == "stored":
            until = NOW + timedelta(days=1 + i % 300)
        else:
            until = NOW - timedelta(hours=1 + i % 50)
        finished = NOW - timedelta(minutes=1 + i % 30)
        yield "recordings", (rid, rid, "conversation", status, f"pbxb-{rid}", "consent",
                             "default", 60, until, "wav", "mixed", finished, finished)
        if status == "prepared":
            yield "recording_copies", (f"{i:08x}-0000-4000-c000-{i:012x}", rid, "ftp", rid,
                                       "pending", False, 0, finished)


def expected(count: int) -> tuple[Counter[str], datetime]:
    statuses = Counter(_status_of(i) for i in range(count))
    overdue = [NOW - timedelta(hours=1 + i % 50) for i in range(count)
               if _status_of(i) in ("prepared", "deleting")]
    return statuses, min(overdue)


def _sqlite_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load_sqlite(path: str, count: int) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous=OFF")  # setup only
        db.execute("BEGIN")
        batch: dict[str, list[tuple[Any, ...]]] = {"recordings": [], "recording_copies": []}
        for table, row in _rows(count):
            batch[table].append(tuple(_sqlite_time(v) if isinstance(v, datetime) else v
                                      for v in row))
            if len(batch["recordings"]) >= CHUNK:
                _flush_sqlite(db, batch)
        _flush_sqlite(db, batch)
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


def _flush_sqlite(db: sqlite3.Connection, batch: dict[str, list[tuple[Any, ...]]]) -> None:
    for table, rows in batch.items():
        cols = RECORDING_COLUMNS if table == "recordings" else COPY_COLUMNS
        db.executemany(f"INSERT INTO {table} ({', '.join(cols)}) "
                       f"VALUES ({', '.join('?' for _ in cols)})", rows)
        rows.clear()


async def _load_postgres(url: str, count: int) -> None:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        batch: dict[str, list[tuple[Any, ...]]] = {"recordings": [], "recording_copies": []}
        for table, row in _rows(count):
            batch[table].append(row)
            if len(batch["recordings"]) >= CHUNK:
                await _flush_postgres(conn, batch)
        await _flush_postgres(conn, batch)
        await conn.execute("VACUUM ANALYZE recordings")
        await conn.execute("VACUUM ANALYZE recording_copies")
    finally:
        await conn.close()


async def _flush_postgres(conn: Any, batch: dict[str, list[tuple[Any, ...]]]) -> None:
    # Recordings first: the copies refer to them.
    for table in ("recordings", "recording_copies"):
        rows = batch[table]
        if rows:
            cols = RECORDING_COLUMNS if table == "recordings" else COPY_COLUMNS
            await conn.copy_records_to_table(table, records=rows, columns=cols)
            rows.clear()


async def _measure(url: str, repeat: int) -> dict[str, Any]:
    from sqlalchemy import select

    from storage.backlog import read_backlog
    from storage.database import make_engine, make_session_factory
    from storage.deletion import DELETABLE
    from storage.models import Recording, RecordingStatus

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    baseline_query = (
        select(Recording.retain_until)
        .where(
            Recording.status.in_([s.value for s in (*DELETABLE, RecordingStatus.DELETING)]),
            Recording.retain_until.is_not(None),
            Recording.retain_until <= NOW,
            Recording.hold_reason.is_(None),
        )
        .order_by(Recording.retain_until)
        .limit(1)
    )
    refresh_s: list[float] = []
    baseline_s: list[float] = []
    backlog = None
    baseline = None
    try:
        for _ in range(repeat):
            async with sessions() as session:
                started = time.perf_counter()
                backlog = await read_backlog(session, NOW)
                refresh_s.append(time.perf_counter() - started)
            async with sessions() as session:
                started = time.perf_counter()
                baseline = await session.scalar(baseline_query)
                baseline_s.append(time.perf_counter() - started)
    finally:
        await engine.dispose()
    assert backlog is not None
    return {"refresh_s": refresh_s, "baseline_s": baseline_s, "backlog": backlog,
            "baseline": baseline}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", type=int, default=1_000_000,
                        help="recordings (default 1000000)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each (default 5)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (default) or a postgresql+asyncpg:// server URL: "
                             "a temporary database is created there and dropped")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 recordings")
    args = parser.parse_args()
    count = 20_000 if args.quick else args.recordings
    if count < 4000 or args.repeat < 1:
        parser.error("need --recordings >= 4000 and --repeat >= 1")

    from storage.database import upgrade

    with (
        work_folder("pbxb-bench-metrics-") as work,
        bench_database(args.database, work) as (db_url, database),
    ):
        asyncio.run(upgrade(db_url))
        started = time.perf_counter()
        if is_postgres(db_url):
            asyncio.run(_load_postgres(db_url, count))
        else:
            _load_sqlite(db_url.split(":///", 1)[1], count)
        setup_s = time.perf_counter() - started
        result = asyncio.run(_measure(db_url, args.repeat))

    statuses, oldest_overdue = expected(count)
    backlog = result["backlog"]
    found = {status: n for status, n in backlog.recordings.items() if n}
    if found != dict(statuses):
        raise BenchCheckFailed(f"refresh counted {found}, the table holds {dict(statuses)}")
    if backlog.copies != {("ftp", "pending"): statuses["prepared"]}:
        raise BenchCheckFailed(f"refresh found copies {backlog.copies}")
    for label, until in (("refresh", backlog.oldest_overdue_until),
                         ("baseline", result["baseline"])):
        if until != oldest_overdue:
            raise BenchCheckFailed(f"{label} found the oldest overdue at {until}, "
                                   f"the table's is {oldest_overdue}")

    refresh = statistics.median(result["refresh_s"])
    baseline = statistics.median(result["baseline_s"])
    print(f"metrics refresh on {database}: {count:,} recordings ({statuses['deleted']:,} "
          f"deleted, {statuses['stored']:,} stored, "
          f"{sum(statuses[s] for s in BACKLOG_STATUSES):,} waiting; inserted and analysed "
          f"in {setup_s:.1f} s); {args.repeat} runs each, median (first)")
    print(f"  refresh (every gauge)            {_ms(refresh):>10} "
          f"({_ms(result['refresh_s'][0])})")
    print(f"  baseline (purge lag alone, as the purge paged) {_ms(baseline):>10} "
          f"({_ms(result['baseline_s'][0])})  baseline/refresh {baseline / refresh:.1f}x")
    print("  both found the same oldest overdue recording; the refresh counted exactly "
          "the table")
    return 0


if __name__ == "__main__":
    sys.exit(main())
