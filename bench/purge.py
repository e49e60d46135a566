"""Retention purge of many expired recordings on the local backend, against plain unlinks.

Every recording is ``stored`` with ``retain_until`` in the past and one ``verified`` copy
on a ``LocalBackend`` (a small real file). ``purge_expired`` must delete every file, mark
every copy and recording ``deleted`` and write one tombstone each; the baseline is a
Python loop of ``os.unlink`` over as many files laid out the same way, so the ratio says
what the bookkeeping (claims, copy rows, tombstones, commits) costs on top of the disk.

``--deleted N`` adds N recordings that earlier purges deleted (status ``deleted``, no
copies, their retain_until kept, all before the expired ones), as years of service leave
them; the purge must not read them. After the purge a second run, with nothing left due,
is timed as well: what the service's purger does every interval on such a table.

    .venv/bin/python bench/purge.py [--count N] [--deleted N] [--batch B] [--quick]
                                    [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BenchCheckFailed,
    Stopwatch,
    bench_database,
    cpu_seconds,
    emit_result,
    peak_rss_kib,
    print_breakdown,
    rss_kib,
    run_maybe_profiled,
    run_phase,
    work_folder,
)

SCRIPT = Path(__file__).resolve()
NOW = datetime(2026, 6, 1, tzinfo=UTC)
FILE_BYTES = 1024
PER_CALL_FOLDER = 100  # recordings per {call_id} folder, as a busy day would have
INSERT_CHUNK = 5000


def _folder(index: int) -> str:
    return f"2026/04/01/call-{index // PER_CALL_FOLDER:06d}"


def _write_files(root: Path, names: list[str]) -> None:
    """Blocking, and run before any event loop: setup only."""
    payload = os.urandom(FILE_BYTES)
    made: set[str] = set()
    for index, name in enumerate(names):
        folder = _folder(index)
        if folder not in made:
            (root / folder).mkdir(parents=True, exist_ok=True)
            made.add(folder)
        with open(root / folder / name, "wb") as fh:
            fh.write(payload)


def _files_left(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


# -- setup: rows in bulk, files fast -----------------------------------------------------


def _recording_row(rid: str, index: int, status: str, retain_until: datetime) -> dict[str, Any]:
    started = NOW - timedelta(days=61)
    return {
        "id": rid, "call_id": f"call-{index // PER_CALL_FOLDER:06d}", "kind": "conversation",
        "status": status, "asterisk_name": f"pbxb-{rid}", "legal_basis": "consent",
        "retention_class": "default", "retention_days": 30, "format": "wav",
        "sha256": uuid.uuid5(uuid.NAMESPACE_OID, rid).hex * 2, "size_bytes": FILE_BYTES,
        "duration_s": 0.06, "started_at": started, "finished_at": started,
        "stored_at": started, "retain_until": retain_until,
    }


async def _insert_deleted(engine: Any, count: int) -> None:
    """Deleted over the 900 days before the expired ones, not in insertion order."""
    from sqlalchemy import insert

    from storage.models import Recording

    span_s = 900 * 86400
    for start in range(0, count, INSERT_CHUNK):
        rows = []
        for index in range(start, min(start + INSERT_CHUNK, count)):
            until = NOW - timedelta(days=31, seconds=(index * 7919) % span_s)
            row = _recording_row(str(uuid.uuid4()), index, "deleted", until)
            row["deleted_at"] = until
            rows.append(row)
        async with engine.begin() as conn:
            await conn.execute(insert(Recording), rows)


async def _insert_rows(db: str, ids: list[str], deleted: int) -> None:
    from sqlalchemy import insert, text

    from storage.database import make_engine
    from storage.models import Base, Recording, RecordingCopy

    engine = make_engine(db)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await _insert_deleted(engine, deleted)
        started = NOW - timedelta(days=61)
        for start in range(0, len(ids), INSERT_CHUNK):
            chunk = ids[start : start + INSERT_CHUNK]
            recordings: list[dict[str, Any]] = []
            copies: list[dict[str, Any]] = []
            for offset, rid in enumerate(chunk):
                index = start + offset
                # Spread over a day, so keyset pagination works on distinct values.
                until = NOW - timedelta(days=30, seconds=index % 86400)
                recordings.append(_recording_row(rid, index, "stored", until))
                sha = recordings[-1]["sha256"]
                copies.append({
                    "id": str(uuid.uuid4()), "recording_id": rid, "backend": "local",
                    "key": f"{_folder(index)}/{rid}.wav", "status": "verified",
                    "encrypted": False, "size_bytes": FILE_BYTES, "sha256": sha,
                    "attempts": 0, "created_at": started, "verified_at": started,
                })
            async with engine.begin() as conn:
                await conn.execute(insert(Recording), recordings)
                await conn.execute(insert(RecordingCopy), copies)
        async with engine.begin() as conn:  # as autovacuum would have by now
            await conn.execute(text("ANALYZE recordings"))
    finally:
        await engine.dispose()


def _setup_phase(work: Path, count: int, db: str, deleted: int) -> None:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    started = time.perf_counter()
    _write_files(work / "store", [f"{rid}.wav" for rid in ids])
    _write_files(work / "baseline", [f"{index:08d}.wav" for index in range(count)])
    files_s = time.perf_counter() - started
    started = time.perf_counter()
    asyncio.run(_insert_rows(db, ids, deleted))
    emit_result({"files_s": files_s, "rows_s": time.perf_counter() - started})


# -- the baseline: os.unlink in a loop -----------------------------------------------------


def _unlink_phase(work: Path, count: int) -> None:
    root = work / "baseline"
    paths = [str(root / _folder(i) / f"{i:08d}.wav") for i in range(count)]
    rss_before = rss_kib()
    cpu0 = cpu_seconds()
    started = time.perf_counter()
    for path in paths:
        os.unlink(path)
    wall = time.perf_counter() - started
    cpu = cpu_seconds() - cpu0
    if left := _files_left(root):
        raise BenchCheckFailed(f"baseline: {left} files left")
    emit_result({"wall_s": wall, "cpu_s": cpu, "rows": count,
                 "rss_before_kib": rss_before, "peak_rss_kib": peak_rss_kib()})


# -- the purge -----------------------------------------------------------------------------


async def _purge_phase(work: Path, count: int, db: str, batch: int, deleted_before: int) -> None:
    from sqlalchemy import func, select

    import storage.retention as retention_module
    from storage.backends.local import LocalBackend
    from storage.database import make_engine, make_session_factory
    from storage.deletion import RecordingDeleter
    from storage.models import Recording, RecordingCopy, Tombstone
    from storage.retention import purge_expired

    watch = Stopwatch()
    engine = make_engine(db)
    watch.time_database(engine)
    sessions = make_session_factory(engine)
    backend = LocalBackend(work / "store")
    watch.wrap_async(backend, "delete", "backend.delete (to_thread unlink)")
    deleter = RecordingDeleter(sessions, {"local": backend}, spool_dir=work / "spool")
    # Where the time goes: each step of a batch, wrapped where purge_expired calls it.
    watch.wrap_async(deleter, "claim", "claim (-> deleting)")
    for step in ("_clear_copies", "_clear_spool", "_destroy_keys", "_seal"):
        watch.wrap_async(deleter, step, f"deleter.{step}")
    watch.wrap_async(retention_module, "_expired_page", "select expired page")
    watch.wrap_async(retention_module, "_refresh_sqlite_statistics", "ANALYZE (SQLite only)")
    try:
        async with sessions() as session:  # warm the pool: not part of the purge
            await session.scalar(select(func.count()).select_from(Recording))
        watch.totals.clear()
        rss_before = rss_kib()
        cpu0 = cpu_seconds()
        started = time.perf_counter()
        report = await purge_expired(sessions, deleter, now=NOW, batch=batch)
        wall = time.perf_counter() - started
        cpu = cpu_seconds() - cpu0
        peak = peak_rss_kib()
        breakdown = watch.as_dict()  # the purge's own, not the second run's
        watch.totals.clear()
        idle_started = time.perf_counter()
        idle = await purge_expired(sessions, deleter, now=NOW, batch=batch)
        idle_s = time.perf_counter() - idle_started
        idle_breakdown = watch.as_dict()

        async with sessions() as session:
            all_deleted = await session.scalar(
                select(func.count()).select_from(Recording).where(Recording.status == "deleted")
            )
            deleted = (all_deleted or 0) - deleted_before
            copies_deleted = await session.scalar(
                select(func.count())
                .select_from(RecordingCopy)
                .where(RecordingCopy.status == "deleted")
            )
            tombstones = await session.scalar(select(func.count()).select_from(Tombstone))
    finally:
        await engine.dispose()
    left = await asyncio.to_thread(_files_left, work / "store")
    checks = {
        "report.deleted": report.deleted, "recordings deleted": deleted,
        "copies deleted": copies_deleted, "tombstones": tombstones,
    }
    wrong = {name: value for name, value in checks.items() if value != count}
    if wrong or left or report.still_pending_count or idle.deleted or idle.still_pending_count:
        raise BenchCheckFailed(
            f"purge: expected {count} each, got {wrong}; {left} files left, "
            f"{report.still_pending_count} pending; the second run deleted {idle.deleted}"
        )
    emit_result({"wall_s": wall, "cpu_s": cpu, "rows": count, "rss_before_kib": rss_before,
                 "peak_rss_kib": peak, "breakdown": breakdown, "idle_s": idle_s,
                 "idle_breakdown": idle_breakdown})


# -- the parent ----------------------------------------------------------------------------


def _line(label: str, result: dict[str, Any]) -> None:
    wall = result["wall_s"]
    print(f"{label}: {result['rows']} in {wall:.2f} s = {result['rows'] / wall:,.0f}/s; "
          f"CPU {result['cpu_s']:.2f} s; RSS before {result['rss_before_kib'] / 1024:.1f} MiB, "
          f"peak {result['peak_rss_kib'] / 1024:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=100_000,
                        help="expired recordings (default 100000)")
    parser.add_argument("--deleted", type=int, default=0,
                        help="recordings deleted by earlier purges, also in the table (default 0)")
    parser.add_argument("--batch", type=int, default=500, help="purge batch (default 500)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (default) or a postgresql+asyncpg:// server URL: "
                             "a temporary database is created there and dropped")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 recordings")
    parser.add_argument("--phase", choices=["setup", "unlink", "purge"], help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase == "setup":
        _setup_phase(args.work, args.count, args.db_url, args.deleted)
        return 0
    if args.phase == "unlink":
        _unlink_phase(args.work, args.count)
        return 0
    if args.phase == "purge":
        run_maybe_profiled(
            "purge", lambda: _purge_phase(
                args.work, args.count, args.db_url, args.batch, args.deleted
            )
        )
        return 0

    count = 2000 if args.quick else args.count
    if count < 1 or args.batch < 1 or args.deleted < 0:
        parser.error("--count and --batch must be at least 1, --deleted at least 0")
    with (
        work_folder("pbxb-bench-purge-") as work,
        bench_database(args.database, work) as (db_url, database),
    ):
        common_args = ["--work", str(work), "--count", str(count), "--db-url", db_url]
        setup = run_phase(SCRIPT, ["--phase", "setup", *common_args,
                                   "--deleted", str(args.deleted)])
        print(f"purge: {count} expired recordings on {database}, one {FILE_BYTES}-byte "
              f"local copy each (x2 file sets written in {setup['files_s']:.1f} s, "
              f"rows inserted in {setup['rows_s']:.1f} s); {args.deleted} deleted before; "
              f"batch {args.batch}")
        baseline = run_phase(SCRIPT, ["--phase", "unlink", *common_args])
        purge = run_phase(SCRIPT, ["--phase", "purge", *common_args,
                                   "--batch", str(args.batch), "--deleted", str(args.deleted)])
    _line("os.unlink loop (baseline)", baseline)
    _line(f"purge_expired ({database})", purge)
    print_breakdown("where the purge's time goes", purge["breakdown"], purge["wall_s"])
    print_breakdown("second purge run, nothing due", purge["idle_breakdown"], purge["idle_s"])
    print(f"ratio purge/unlink (time): {purge['wall_s'] / baseline['wall_s']:.1f}x; all "
          f"{count} deleted, {count} tombstones, no files left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
