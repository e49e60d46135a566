"""A page of the call list among 1,000,000 calls: the call search (``calls list``, the web
calls screen, ``GET /api/v1/calls``) against a plain indexed query in the same run.

The database holds N calls a year long (two to a start time: ties), 100,000 callers (one
with 2,000 calls), three DIDs, 50 extensions, the dispositions and consent answers of a
real switchboard (a consent row for 90 % of calls, withdrawals rare), a recording for
every 4th call; inserted in bulk (executemany on SQLite, COPY on PostgreSQL) into the
schema the migrations create, then ``ANALYZE``d.

- **baseline**: ``SELECT * FROM calls ORDER BY started_at DESC, id DESC LIMIT 50`` along
  ``ix_calls_started_at_id``, the cheapest page there is (no consent, no recordings).
- **search**: ``search_calls`` as the CLI and the web call it: the page's ids along the
  driving filter's index, then the calls, their consents and recordings, the views built,
  the next cursor signed. Cases: the first page, a deep page (a cursor half-way back), a
  caller by number (typical, and the caller with 2,000 calls), a supervisor's three
  extensions (first and deep), a disposition, a disposition within the scope, a DID in a
  week, and two consent answers, a filter no index of calls drives: a common one
  (declined: the calls are walked newest first, each one's answer checked) and a rare
  one (withdrawn: its few calls are found from the consents and looked up). OFFSET (not
  used by the search) is timed for the deep page, to show what keyset paging saves.
- **dashboard**: ``call_stats`` (calls and consent per day and DID over the last 30 days).

Each case runs ``--repeat`` times in a fresh session (the first is cold); p50 and p95.

    .venv/bin/python bench/call_list.py [--calls N] [--repeat R] [--quick] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
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
    run_maybe_profiled,
    run_phase,
    work_folder,
)
from subject_lookup import HEAVY_CALLS, NOW, SECRET, e164_of, key_of, subject_of, written

SCRIPT = Path(__file__).resolve()
SUBJECTS = 100_000
CHUNK = 50_000
LIMIT = 50
DIDS = ("2125550100",) * 16 + ("2125550101",) * 3 + ("902125550102",)
EXTENSIONS = tuple(str(100 + n) for n in range(50))
SCOPE = ("101", "117", "142")
DISPOSITIONS = ("answered",) * 40 + ("abandoned",) * 4 + ("no-answer",) * 3 + (
    "busy",) * 2 + ("failed",)
DECISIONS = ("granted",) * 12 + ("declined",) * 4 + ("timeout",) * 3 + ("not-asked",)
WITHDRAWN_EVERY = 997


def started_of(i: int, calls: int) -> datetime:
    """Two calls to a start time, a minute apart, the newest at NOW."""
    return NOW - timedelta(minutes=(calls - 1 - i) // 2)


def call_id(i: int) -> str:
    # Not in time order: a tie in started_at is broken by id, as in the search.
    return f"{(i * 2654435761) % 2**32:08x}-0000-4000-8000-{i:012x}"


def reference_of(i: int) -> str:
    """The call's reference (eight digits and the check digit, as calls/reference.py)."""
    from pbx_bridge.calls.reference import damm_digit

    digits = f"{i:08d}"
    return digits + damm_digit(digits)


def _rows(calls: int) -> Iterator[tuple[str, tuple[Any, ...]]]:
    keys: dict[int, str] = {}
    for i in range(calls):
        subject = subject_of(i, SUBJECTS)
        key = keys.get(subject)
        if key is None:
            key = keys[subject] = key_of(e164_of(subject))
        caller = written(subject, i)
        started = started_of(i, calls)
        disposition = DISPOSITIONS[((i * 40503) >> 3) % len(DISPOSITIONS)]
        cid = call_id(i)
        extension = EXTENSIONS[((i * 2654435761) >> 9) % len(EXTENSIONS)]
        yield "calls", (cid, f"{i}.1", f"ch-{i}", "inbound", caller, key, DIDS[i % len(DIDS)],
                        extension, "before-connect", "consent", "default", "tr", started,
                        started + timedelta(seconds=20), started + timedelta(minutes=2),
                        disposition, reference_of(i))
        if i % 10 != 9:
            decision = ("withdrawn" if i % WITHDRAWN_EVERY == 0
                        else DECISIONS[(i * 3) % len(DECISIONS)])
            yield "consents", (f"{i:08x}-0000-4000-a000-{i:012x}", cid, caller, key, decision,
                               "tr", 1, started)
        if i % 4 == 0 and disposition == "answered":
            rid = f"{i:08x}-0000-4000-9000-{i:012x}"
            yield "recordings", (rid, cid, "conversation", "stored", f"pbxb-{rid}", "consent",
                                 "default", 60, started + timedelta(days=60), "wav", "mixed",
                                 started)


COLUMNS = {
    "calls": ("id", "linkedid", "channel_id", "direction", "caller", "caller_key", "did",
              "extension", "announcement", "legal_basis", "retention_class", "language",
              "started_at", "answered_at", "ended_at", "disposition", "reference"),
    "consents": ("id", "call_id", "caller", "caller_key", "decision", "language",
                 "times_played", "decided_at"),
    "recordings": ("id", "call_id", "kind", "status", "asterisk_name", "legal_basis",
                   "retention_class", "retention_days", "retain_until", "format", "layout",
                   "started_at"),
}


def _chunks(calls: int) -> Iterator[dict[str, list[tuple[Any, ...]]]]:
    batch: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
    size = 0
    for table, row in _rows(calls):
        batch[table].append(row)
        size += 1
        if size >= CHUNK:
            yield batch
            batch = {table: [] for table in COLUMNS}
            size = 0
    yield batch


# -- setup -------------------------------------------------------------------------------


def _load_sqlite(path: str, calls: int) -> None:
    """Rows first, then the migrations' own indexes built again over them: building an
    index over a million sorted keys takes seconds, keeping nine up to date row by row
    (random ids) took over a quarter of an hour on a loaded machine."""
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # setup only; a crash here just reruns it
        db.execute("PRAGMA synchronous=OFF")
        tables = ", ".join(f"'{t}'" for t in COLUMNS)
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            f"AND (name LIKE 'ix_%' OR name LIKE 'ux_%') AND tbl_name IN ({tables})"
        ).fetchall()
        for name, _ in indexes:
            db.execute(f'DROP INDEX "{name}"')
        db.execute("BEGIN")
        for batch in _chunks(calls):
            for table, rows in batch.items():
                if rows:
                    cols = COLUMNS[table]
                    db.executemany(
                        f"INSERT INTO {table} ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' for _ in cols)})",
                        [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, datetime)
                               else v for v in row) for row in rows],
                    )
        db.execute("COMMIT")
        for _, sql in indexes:
            db.execute(sql)
        db.execute("PRAGMA journal_mode=WAL")  # as the service opens it
        db.execute("ANALYZE")
    finally:
        db.close()


async def _load_postgres(url: str, calls: int) -> None:
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        # As on SQLite: the migrations' indexes dropped, rows copied, indexes built again.
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND (indexname LIKE 'ix_%' OR indexname LIKE 'ux_%') AND tablename = ANY($1::text[])",
            list(COLUMNS),
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        for batch in _chunks(calls):
            for table, rows in batch.items():
                if rows:
                    await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])
        for row in indexes:
            await conn.execute(row["indexdef"])
        # VACUUM too: a fresh COPY leaves the visibility map unset, so index-only scans
        # read the table, and autovacuum would then do it in the middle of the timed run.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _setup_phase(db: str, calls: int) -> None:
    from storage.database import upgrade

    asyncio.run(upgrade(db))
    started = time.perf_counter()
    if is_postgres(db):
        asyncio.run(_load_postgres(db, calls))
    else:
        _load_sqlite(db.split(":///", 1)[1], calls)
    emit_result({"rows_s": time.perf_counter() - started})


# -- the cases ---------------------------------------------------------------------------


def _cases(calls: int) -> list[tuple[str, dict[str, Any], int | None]]:
    """(label, CallFilter keywords, index of the call the cursor starts after or None)."""
    deep = calls // 2
    return [
        ("first page", {}, None),
        ("deep page (cursor half-way)", {}, deep),
        ("number: typical caller", {"number": e164_of(1)}, None),
        (f"number: caller with {HEAVY_CALLS} calls", {"number": e164_of(0)}, None),
        ("scope: 3 extensions", {"extensions": frozenset(SCOPE)}, None),
        ("scope: 3 extensions, deep", {"extensions": frozenset(SCOPE)}, deep),
        ("disposition busy", {"disposition": "busy"}, None),
        ("disposition busy in scope", {"disposition": "busy",
                                       "extensions": frozenset(SCOPE)}, None),
        ("DID in a week", {"did": "2125550101", "since": NOW - timedelta(days=14),
                           "until": NOW - timedelta(days=7)}, None),
        ("consent withdrawn (rare)", {"consent": "withdrawn"}, None),
        ("consent declined (walked)", {"consent": "declined"}, None),
    ]


def _expected_page(label: str, calls: int) -> int:
    """The page's size by the data set's own rule (the cases that may match fewer)."""
    rules = {
        "number: typical caller": lambda i: subject_of(i, SUBJECTS) == 1,
        f"number: caller with {HEAVY_CALLS} calls": lambda i: subject_of(i, SUBJECTS) == 0,
        "consent withdrawn (rare)": lambda i: i % WITHDRAWN_EVERY == 0 and i % 10 != 9,
    }
    rule = rules.get(label)
    if rule is None:
        return LIMIT
    return min(LIMIT, sum(1 for i in range(calls) if rule(i)))


def _quantiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"first": times[0], "p50": statistics.median(ordered), "p95": p95}


async def _measure_phase(db: str, calls: int, repeat: int) -> None:
    from sqlalchemy import select, text

    from pbx_bridge.calls.dashboard import call_stats
    from pbx_bridge.calls.models import Call
    from pbx_bridge.calls.search import CallFilter, CursorSigner, Keyset, search_calls
    from pbx_bridge.subjects.index import SubjectIndex
    from pbx_bridge.subjects.numbers import SubjectKeyer
    from storage.database import make_engine, make_session_factory

    subjects = SubjectIndex(SubjectKeyer(SECRET), "TR")
    signer = CursorSigner(lambda: b"c" * 32)
    engine = make_engine(db)
    sessions = make_session_factory(engine)
    results: dict[str, Any] = {}

    async def timed(label: str, run: Any) -> Any:
        times, out = [], None
        for _ in range(repeat):
            async with sessions() as session:
                started = time.perf_counter()
                out = await run(session)
                times.append(time.perf_counter() - started)
        results[label] = _quantiles(times)
        return out

    try:
        async with sessions() as session:
            await session.execute(text("SELECT 1"))
        cpu0 = cpu_seconds()

        async def baseline(session: Any) -> int:
            rows = (await session.scalars(
                select(Call).order_by(Call.started_at.desc(), Call.id.desc()).limit(LIMIT)
            )).all()
            return len(rows)

        await timed("baseline: plain indexed first page", baseline)
        pages: dict[str, int] = {}
        for label, keywords, after in _cases(calls):
            filters = CallFilter(**keywords)
            cursor = None
            if after is not None:
                cursor = signer.encode(Keyset(started_of(after, calls), call_id(after)), filters)

            async def page(session: Any, f: CallFilter = filters, c: str | None = cursor) -> int:
                found = await search_calls(session, f, signer=signer, subjects=subjects,
                                           cursor=c, limit=LIMIT)
                return len(found.calls)

            pages[label] = await timed(label, page)

        async def offset(session: Any) -> int:
            rows = (await session.scalars(
                select(Call.id).order_by(Call.started_at.desc(), Call.id.desc())
                .offset(calls // 2).limit(LIMIT)
            )).all()
            return len(rows)

        await timed("deep page by OFFSET (not used)", offset)

        async def dashboard(session: Any) -> int:
            stats = await call_stats(session, now=NOW)
            return stats.window.calls

        window_calls = await timed("dashboard: 30 days per day and DID", dashboard)
        cpu = cpu_seconds() - cpu0
    finally:
        await engine.dispose()
    emit_result({"times": results, "pages": pages, "window_calls": window_calls,
                 "cpu_s": cpu, "peak_rss_kib": peak_rss_kib()})


# -- the parent --------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@dataclass(frozen=True)
class Ran:
    """What the parent gets back from the two phases of a run."""

    calls: int
    repeat: int
    database: str  # "sqlite" or "postgresql"
    setup: dict[str, Any]
    run: dict[str, Any]


def run_phases(
    script: Path, doc: str, phase: str, work_prefix: str,
    measure: Callable[[str, int, int], Coroutine[Any, Any, None]],
) -> Ran | None:
    """The command line this benchmark and ``call_list_web.py`` share: as a child, run
    the phase asked for (None); as the parent, the bulk load then the measurement, each
    in a fresh process, on a throw-away database."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls (default 1000000)")
    parser.add_argument("--repeat", type=int, default=20, help="runs per case (default 20)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (default) or a postgresql+asyncpg:// server URL: "
                             "a temporary database is created there and dropped")
    parser.add_argument("--quick", action="store_true", help="smoke run: 50,000 calls")
    parser.add_argument("--phase", choices=["setup", "measure"], help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "setup":
        _setup_phase(args.db_url, args.calls)
        return None
    if args.phase == "measure":
        run_maybe_profiled(phase, lambda: measure(args.db_url, args.calls, args.repeat))
        return None

    calls = 50_000 if args.quick else args.calls
    repeat = min(args.repeat, 5) if args.quick else args.repeat
    if calls < HEAVY_CALLS + SUBJECTS // 10 or repeat < 1:
        parser.error(f"need --calls >= {HEAVY_CALLS + SUBJECTS // 10} and --repeat >= 1")
    with (
        work_folder(work_prefix) as work,
        bench_database(args.database, work) as (db_url, database),
    ):
        shared = ["--db-url", db_url, "--calls", str(calls)]
        setup = run_phase(script, ["--phase", "setup", *shared])
        run = run_phase(script, ["--phase", "measure", "--repeat", str(repeat), *shared])
    return Ran(calls, repeat, database, setup, run)


def main() -> int:
    ran = run_phases(SCRIPT, __doc__, "call-list", "pbxb-bench-calls-", _measure_phase)
    if ran is None:
        return 0
    calls, repeat, database, setup, run = ran.calls, ran.repeat, ran.database, ran.setup, ran.run
    for label, found in run["pages"].items():
        want = _expected_page(label, calls)
        if found != want:
            raise BenchCheckFailed(f"{label}: a page of {found} calls, {want} expected")
    print(f"call list on {database}: {calls:,} calls (inserted and analysed in "
          f"{setup['rows_s']:.1f} s); pages of {LIMIT}, {repeat} runs each, first cold")
    print(f"  {'case':<40} {'first':>10} {'p50':>10} {'p95':>10}")
    for label, t in run["times"].items():
        print(f"  {label:<40} {_ms(t['first']):>10} {_ms(t['p50']):>10} {_ms(t['p95']):>10}")
    base = run["times"]["baseline: plain indexed first page"]["p95"]
    worst = max((t["p95"], label) for label, t in run["times"].items()
                if label in run["pages"])
    print(f"  worst search p95: {_ms(worst[0])} ({worst[1]}), {worst[0] / base:.1f}x the "
          f"baseline's; dashboard window {run['window_calls']:,} calls")
    print(f"  CPU {run['cpu_s']:.2f} s for all; peak RSS {run['peak_rss_kib'] / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
