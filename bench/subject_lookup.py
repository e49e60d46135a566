"""Finding everything held about one data subject among 1,000,000 calls: the subject-key
index (``holdings_of``) against the lookup by number that exists without it.

The database holds N calls of S subjects (one frequent caller with 2,000 calls, the rest
spread evenly), a consent row for every call, a recording for every 4th call and a
tombstone for every 40th, inserted in bulk (executemany on SQLite, COPY on PostgreSQL)
into the schema the migrations create, then ``ANALYZE``d. Numbers are written the ways
carriers send them (``0532…``, ``+90532…``, ``90532…``), so a lookup by number has to
match on the last ten digits.

- **index**: ``pbx_bridge.subjects.lookup.holdings_of(session, subject_key)``: calls and
  consents through their ``caller_key`` index, recordings and tombstones by call id.
- **scan** (baseline): the same rows found by number, as ``calls list --number`` does
  (``caller = N OR caller LIKE '%<last 10 digits>'``); a leading wildcard cannot use the
  ``caller`` index, so every lookup reads every call and consent row.

Each lookup runs ``--repeat`` times in one process (the first on a cold session, then
warm); both methods must find exactly the rows the data set was built with.

    .venv/bin/python bench/subject_lookup.py [--calls N] [--subjects S] [--repeat R]
                                             [--quick] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BenchCheckFailed,
    bench_database,
    cpu_seconds,
    emit_result,
    is_postgres,
    peak_rss_kib,
    rss_kib,
    run_maybe_profiled,
    run_phase,
    work_folder,
)

SCRIPT = Path(__file__).resolve()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
SECRET = b"pbx-bridge-benchmark-subject-key"  # 32 bytes; a fixed key keeps runs comparable
HEAVY_CALLS = 2000  # the frequent caller (a customer who calls every day for years)
RECORDING_EVERY = 4
TOMBSTONE_EVERY = 40  # of the calls; these recordings are deleted and leave a tombstone
CHUNK = 50_000


# -- the data set (a pure function of the call index) --------------------------------------


def subject_of(i: int, subjects: int) -> int:
    if i < HEAVY_CALLS:
        return 0
    return 1 + (i - HEAVY_CALLS) % (subjects - 1)


def e164_of(subject: int) -> str:
    return f"+90532{subject:07d}"


def written(subject: int, i: int) -> str:
    """As the carrier sent it: national mostly, some E.164, some without the plus."""
    national = e164_of(subject)[3:]
    style = i % 10
    if style < 7:
        return "0" + national
    if style < 9:
        return "+90" + national
    return "90" + national


def key_of(e164: str) -> str:
    # What SubjectKeyer.key computes; inlined so setup needs no import of the service.
    return hmac.new(SECRET, e164.encode(), hashlib.sha256).hexdigest()


def call_id(i: int) -> str:
    return f"{i:08x}-0000-4000-8000-{i:012x}"


def rec_id(i: int) -> str:
    return f"{i:08x}-0000-4000-9000-{i:012x}"


@dataclass(frozen=True)
class Probe:
    label: str
    subject: int


def probes(subjects: int) -> list[Probe]:
    return [
        Probe(f"frequent caller ({HEAVY_CALLS} calls)", 0),
        Probe("typical caller", 1),
        Probe("typical caller", subjects // 2),
        Probe("unknown number (no calls)", subjects + 7),
    ]


def expected_rows(subject: int, calls: int, subjects: int) -> dict[str, int]:
    mine = [i for i in range(calls) if subject_of(i, subjects) == subject]
    return {
        "calls": len(mine),
        "consents": len(mine),
        "recordings": sum(1 for i in mine if i % RECORDING_EVERY == 0),
        "tombstones": sum(1 for i in mine if i % TOMBSTONE_EVERY == 0),
    }


def _rows(calls: int, subjects: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("calls"|"consents"|"recordings"|"tombstones", row) in insertion order."""
    keys: dict[int, str] = {}
    for i in range(calls):
        subject = subject_of(i, subjects)
        key = keys.get(subject)
        if key is None:
            key = keys[subject] = key_of(e164_of(subject))
        caller = written(subject, i)
        started = NOW - timedelta(seconds=30 * (calls - i))
        ended = started + timedelta(minutes=2)
        cid = call_id(i)
        yield "calls", (cid, f"{i}.1", f"ch-{i}", "inbound", caller, key, "2125550100", "100",
                        "before-connect", "consent", "default", "tr", started, started, ended,
                        "answered")
        granted = i % 3 != 2
        yield "consents", (f"{i:08x}-0000-4000-a000-{i:012x}", cid, caller, key,
                           "granted" if granted else "declined", "1" if granted else "2",
                           "tr", "disclosure", "v1", 1, started)
        if i % RECORDING_EVERY == 0:
            deleted = i % TOMBSTONE_EVERY == 0
            rid = rec_id(i)
            until = ended + timedelta(days=60)
            yield "recordings", (rid, cid, "conversation", "deleted" if deleted else "stored",
                                 f"pbxb-{rid}", "consent", "default", 60, until, "wav",
                                 "mixed", started, ended if deleted else None)
            if deleted:
                yield "tombstones", (f"{i:08x}-0000-4000-b000-{i:012x}", rid, cid,
                                     "conversation", "consent", "default", until, "retention",
                                     "[]", ended, ended)


COLUMNS = {
    "calls": ("id", "linkedid", "channel_id", "direction", "caller", "caller_key", "did",
              "extension", "announcement", "legal_basis", "retention_class", "language",
              "started_at", "answered_at", "ended_at", "disposition"),
    "consents": ("id", "call_id", "caller", "caller_key", "decision", "digit", "language",
                 "prompt_name", "prompt_version", "times_played", "decided_at"),
    "recordings": ("id", "call_id", "kind", "status", "asterisk_name", "legal_basis",
                   "retention_class", "retention_days", "retain_until", "format", "layout",
                   "started_at", "deleted_at"),
    "tombstones": ("id", "recording_id", "call_id", "kind", "legal_basis", "retention_class",
                   "retain_until", "reason", "deleted_where", "requested_at", "deleted_at"),
}


def _chunks(calls: int, subjects: int) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    batch: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
    size = 0
    for table, row in _rows(calls, subjects):
        batch[table].append(row)
        size += 1
        if size >= CHUNK:
            yield batch
            batch = {table: [] for table in COLUMNS}
            size = 0
    yield batch


# -- setup: schema by migration, rows in bulk ------------------------------------------------


def _sqlite_time(value: datetime | None) -> str | None:
    # SQLAlchemy's SQLite DateTime storage format (UTCDateTime keeps it in UTC).
    return None if value is None else value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load_sqlite(path: str, calls: int, subjects: int) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA synchronous=OFF")  # setup only; a crash here just reruns it
        db.execute("BEGIN")
        for batch in _chunks(calls, subjects):
            for table, rows in batch.items():
                if not rows:
                    continue
                cols = COLUMNS[table]
                converted = [
                    tuple(_sqlite_time(v) if isinstance(v, datetime) else v for v in row)
                    for row in rows
                ]
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(cols)}) "
                    f"VALUES ({', '.join('?' for _ in cols)})",
                    converted,
                )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        db.close()


async def _load_postgres(url: str, calls: int, subjects: int) -> None:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        for batch in _chunks(calls, subjects):
            for table, rows in batch.items():
                if rows:
                    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _setup_phase(db: str, calls: int, subjects: int) -> None:
    from storage.database import upgrade

    asyncio.run(upgrade(db))
    started = time.perf_counter()
    if is_postgres(db):
        asyncio.run(_load_postgres(db, calls, subjects))
    else:
        _load_sqlite(db.split(":///", 1)[1], calls, subjects)
    emit_result({"rows_s": time.perf_counter() - started})


# -- the two lookups -------------------------------------------------------------------------


async def _by_number(session: Any, e164: str) -> dict[str, int]:
    """The baseline: the same holdings found through the number as written on the rows."""
    from sqlalchemy import or_, select

    from pbx_bridge.calls.models import Call, Consent
    from storage.models import Recording, Tombstone

    suffix = "%" + "".join(ch for ch in e164 if ch.isdigit())[-10:]
    calls = (
        await session.scalars(
            select(Call)
            .where(or_(Call.caller == e164, Call.caller.like(suffix)))
            .order_by(Call.started_at)
        )
    ).all()
    consents = (
        await session.scalars(
            select(Consent)
            .where(or_(Consent.caller == e164, Consent.caller.like(suffix)))
            .order_by(Consent.decided_at)
        )
    ).all()
    ids = [c.id for c in calls]
    recordings: list[Any] = []
    tombstones: list[Any] = []
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        recordings += (
            await session.scalars(select(Recording).where(Recording.call_id.in_(batch)))
        ).all()
        tombstones += (
            await session.scalars(select(Tombstone).where(Tombstone.call_id.in_(batch)))
        ).all()
    return {"calls": len(calls), "consents": len(consents), "recordings": len(recordings),
            "tombstones": len(tombstones)}


async def _by_key(session: Any, e164: str) -> dict[str, int]:
    from pbx_bridge.subjects.lookup import holdings_of

    held = await holdings_of(session, key_of(e164))
    return {"calls": len(held.calls), "consents": len(held.consents),
            "recordings": len(held.recordings), "tombstones": len(held.tombstones)}


async def _lookup_phase(db: str, method: str, subjects: int, repeat: int) -> None:
    from sqlalchemy import text

    from storage.database import make_engine, make_session_factory

    lookup = _by_key if method == "index" else _by_number
    engine = make_engine(db)
    sessions = make_session_factory(engine)
    try:
        async with sessions() as session:  # connect and warm the pool: not measured
            await session.execute(text("SELECT 1"))
        rss_before = rss_kib()
        cpu0 = cpu_seconds()
        results = []
        for probe in probes(subjects):
            times = []
            found: dict[str, int] = {}
            for _ in range(repeat):
                async with sessions() as session:  # a new session: no identity-map hits
                    started = time.perf_counter()
                    found = await lookup(session, e164_of(probe.subject))
                    times.append(time.perf_counter() - started)
            results.append({"subject": probe.subject, "found": found, "times_s": times})
        cpu = cpu_seconds() - cpu0
    finally:
        await engine.dispose()
    emit_result({"probes": results, "cpu_s": cpu, "rss_before_kib": rss_before,
                 "peak_rss_kib": peak_rss_kib()})


# -- the parent ------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls (default 1000000)")
    parser.add_argument("--subjects", type=int, default=100_000,
                        help="distinct callers (default 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="lookups per subject (default 5)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (default) or a postgresql+asyncpg:// server URL: "
                             "a temporary database is created there and dropped")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20,000 calls")
    parser.add_argument("--phase", choices=["setup", "lookup"], help=argparse.SUPPRESS)
    parser.add_argument("--method", choices=["index", "scan"], help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "setup":
        _setup_phase(args.db_url, args.calls, args.subjects)
        return 0
    if args.phase == "lookup":
        run_maybe_profiled(
            f"lookup-{args.method}",
            lambda: _lookup_phase(args.db_url, args.method, args.subjects, args.repeat),
        )
        return 0

    calls = 20_000 if args.quick else args.calls
    subjects = min(args.subjects, 2_000) if args.quick else args.subjects
    if calls < HEAVY_CALLS + subjects or subjects < 2 or args.repeat < 1:
        parser.error(f"need --calls >= {HEAVY_CALLS} + --subjects, --subjects >= 2, "
                     "--repeat >= 1")
    with (
        work_folder("pbxb-bench-subjects-") as work,
        bench_database(args.database, work) as (db_url, database),
    ):
        shared = ["--db-url", db_url, "--calls", str(calls), "--subjects", str(subjects)]
        setup = run_phase(SCRIPT, ["--phase", "setup", *shared])
        runs = {
            method: run_phase(SCRIPT, ["--phase", "lookup", "--method", method,
                                       "--repeat", str(args.repeat), *shared])
            for method in ("index", "scan")
        }

    recordings = len(range(0, calls, RECORDING_EVERY))
    tombstones = len(range(0, calls, TOMBSTONE_EVERY))
    print(f"subject lookup on {database}: {calls:,} calls of {subjects:,} subjects, "
          f"{calls:,} consents, {recordings:,} recordings, {tombstones:,} tombstones "
          f"(inserted and analysed in {setup['rows_s']:.1f} s); {args.repeat} lookups each, "
          "first on a cold session")
    header = (f"  {'subject':<34} {'calls':>6} {'consents':>8} {'recs':>5} {'tombs':>5}"
              f"  {'index first':>11} {'median':>11}  {'scan first':>11} {'median':>11}"
              f"  {'scan/index':>10}")
    print(header)
    for n, probe in enumerate(probes(subjects)):
        want = expected_rows(probe.subject, calls, subjects)
        index, scan = runs["index"]["probes"][n], runs["scan"]["probes"][n]
        for method, result in (("index", index), ("scan", scan)):
            if result["found"] != want:
                raise BenchCheckFailed(
                    f"{method} lookup of subject {probe.subject}: found {result['found']}, "
                    f"the data set holds {want}"
                )
        index_median = statistics.median(index["times_s"])
        scan_median = statistics.median(scan["times_s"])
        print(f"  {probe.label:<34} {want['calls']:>6} {want['consents']:>8} "
              f"{want['recordings']:>5} {want['tombstones']:>5}  "
              f"{_ms(index['times_s'][0]):>11} {_ms(index_median):>11}  "
              f"{_ms(scan['times_s'][0]):>11} {_ms(scan_median):>11}  "
              f"{scan_median / index_median:>9.0f}x")
    for method in ("index", "scan"):
        run = runs[method]
        print(f"  {method}: CPU {run['cpu_s']:.2f} s for all lookups; RSS before "
              f"{run['rss_before_kib'] / 1024:.1f} MiB, peak {run['peak_rss_kib'] / 1024:.1f} MiB")
    print("  both found exactly the rows the data set was built with")
    return 0


if __name__ == "__main__":
    sys.exit(main())
