"""Recording pipeline throughput to a real FTP server, against ``curl -T`` on the same files.

Both upload the same N WAV files to the same vsftpd on 127.0.0.1 with the same number of
uploads at once (C curl processes; a pipeline with C ingests and a target limit of C).
The pipeline does much more per file than curl (fetch into the spool with fsync, decode
and hash, plan and verify copy rows, SIZE check, delete the Asterisk copy), so the ratio
says what that safety costs on one machine, in one run; it is not a pass/fail threshold.

    .venv/bin/python bench/pipeline_ftp.py [--count N] [--seconds S] [--concurrency C]
                                           [--quick] [--database URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BenchCheckFailed,
    Stopwatch,
    children_cpu_seconds,
    cpu_seconds,
    create_temp_database,
    drop_temp_database,
    emit_result,
    is_postgres,
    make_recordings,
    mb,
    peak_rss_kib,
    print_breakdown,
    rss_kib,
    run_maybe_profiled,
    run_phase,
    running_ftp_server,
    work_folder,
)

SCRIPT = Path(__file__).resolve()
PASSWORD_ENV = "PBXB_BENCH_FTP_PASSWORD"  # not in argv, where ps would show it
CURL_DIR = "curl"


# -- phase (a): curl -T, C processes at a time -------------------------------------------


async def _curl_phase(files: list[Path], port: int, user: str, ftp_root: Path, c: int) -> None:
    password = os.environ[PASSWORD_ENV]
    url = f"ftp://127.0.0.1:{port}/{CURL_DIR}/"
    config = f'user = "{user}:{password}"\n'.encode()
    slots = asyncio.Semaphore(c)

    async def upload(path: Path) -> None:
        async with slots:
            proc = await asyncio.create_subprocess_exec(
                "curl", "--silent", "--show-error", "--fail", "--ftp-create-dirs",
                "--config", "-", "--upload-file", str(path), url,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await proc.communicate(config)
            if proc.returncode != 0:
                raise BenchCheckFailed(f"curl {path.name}: {err.decode(errors='replace')}")

    rss_before = rss_kib()
    cpu0, child_cpu0 = cpu_seconds(), children_cpu_seconds()
    start = time.perf_counter()
    await asyncio.gather(*(upload(p) for p in files))
    wall = time.perf_counter() - start
    cpu = cpu_seconds() - cpu0
    child_cpu = children_cpu_seconds() - child_cpu0

    stored = await asyncio.to_thread(_sizes, ftp_root / CURL_DIR)
    expected = {p.name: p.stat().st_size for p in files}
    if stored != expected:
        raise BenchCheckFailed(f"curl: server holds {len(stored)} files, sent {len(expected)}")
    emit_result({
        "wall_s": wall, "bytes": sum(expected.values()), "files": len(files),
        "cpu_s": cpu, "children_cpu_s": child_cpu,
        "rss_before_kib": rss_before, "peak_rss_kib": peak_rss_kib(),
    })


def _sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir() if p.is_file()}


# -- phase (b): the recording pipeline -----------------------------------------------------


async def _pipeline_phase(
    files: list[Path], port: int, user: str, ftp_root: Path, c: int, work: Path, db: str,
    ingests: int,
) -> None:
    # Imported here: the curl phase's memory should not include them.
    from pydantic import SecretStr
    from sqlalchemy import func, select
    from storage_fakes import DirSource

    import storage.backends.ftp as ftp_module
    import storage.intake as intake_module
    import storage.replication as replication_module
    import storage.spool as spool_module
    from storage.backends.ftp import FtpBackend
    from storage.backends.settings import FtpBackendSettings
    from storage.database import make_engine, make_session_factory
    from storage.models import Base, CopyStatus, Recording, RecordingCopy, RecordingKind
    from storage.pipeline import RecordingPipeline
    from storage.replication import Target

    watch = Stopwatch()
    # Where the time goes: wrap the blocking steps where the pipeline looks them up.
    watch.wrap_blocking(replication_module, "digest_file", "hash before put (replicator)")
    watch.wrap_blocking(ftp_module, "digest_file", "hash before put (ftp backend)")
    watch.wrap_blocking(intake_module, "inspect_recording", "prepare: hash + decode audio")
    watch.wrap_blocking(spool_module, "fsync_file", "spool fsync (file)")
    watch.wrap_blocking(spool_module, "fsync_dir", "spool fsync (folder)")

    settings = FtpBackendSettings.model_validate({
        "type": "ftp", "host": "127.0.0.1", "port": port, "username": user,
        "password": SecretStr(os.environ[PASSWORD_ENV]), "base_dir": "/recordings",
        "jurisdiction": "TR", "timeout_s": 30.0,
    })
    backend = FtpBackend(settings, name="ftp")
    watch.wrap_async(backend, "put", "ftp put (login, MKD, STOR, RNFR, SIZE)")
    source = DirSource(work / "asterisk")
    watch.wrap_async(source, "fetch", "fetch into spool (copy)")

    engine = make_engine(db)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    watch.time_database(engine)
    sessions = make_session_factory(engine)
    pipeline = RecordingPipeline(
        sessions, source, work / "spool", [Target("ftp", backend, concurrency=c)],
        concurrency=ingests,
    )
    try:
        async with pipeline:
            rows = [
                await pipeline.begin(
                    call_id=f"bench-{i}", kind=RecordingKind.CONVERSATION,
                    legal_basis="consent", retention_class="default", retention_days=30,
                )
                for i in range(len(files))
            ]
            for row, path in zip(rows, files, strict=True):
                # A hard link: "Asterisk" deleting its copy leaves the baseline's file alone.
                await asyncio.to_thread(os.link, path, source.root / f"{row.asterisk_name}.wav")
            watch.totals.clear()  # only the timed part below
            rss_before = rss_kib()
            cpu0 = cpu_seconds()
            start = time.perf_counter()
            for row in rows:
                await pipeline.finished(row.asterisk_name)
            queued = time.perf_counter() - start
            await pipeline.wait_idle()
            wall = time.perf_counter() - start
            cpu = cpu_seconds() - cpu0
            peak = peak_rss_kib()

        async with sessions() as session:
            stored = await session.scalar(
                select(func.count()).select_from(Recording).where(Recording.status == "stored")
            )
            copies = list(
                (
                    await session.scalars(
                        select(RecordingCopy).where(
                            RecordingCopy.status == CopyStatus.VERIFIED.value
                        )
                    )
                ).all()
            )
    finally:
        await engine.dispose()

    expected = {p.stat().st_size for p in files}
    if stored != len(files) or len(copies) != len(files):
        raise BenchCheckFailed(f"pipeline: {stored} stored, {len(copies)} copies verified, "
                               f"of {len(files)}")
    for copy in copies:
        on_server = ftp_root / "recordings" / copy.key
        size = (await asyncio.to_thread(on_server.stat)).st_size
        if size != copy.size_bytes or size not in expected:
            raise BenchCheckFailed(f"pipeline: {copy.key} is {size} bytes on the server")
    if stats := pipeline.stats.copy_failures + pipeline.stats.retries:
        print(f"note: {stats} retried step(s) during the run", file=sys.stderr)
    emit_result({
        "wall_s": wall, "queue_s": queued, "bytes": sum(p.stat().st_size for p in files),
        "files": len(files), "cpu_s": cpu, "rss_before_kib": rss_before,
        "peak_rss_kib": peak, "breakdown": watch.as_dict(),
        "retries": pipeline.stats.retries, "copy_failures": pipeline.stats.copy_failures,
    })


# -- the parent: set up, run both phases, report ------------------------------------------


def _report(label: str, result: dict[str, Any]) -> None:
    wall = result["wall_s"]
    size = mb(result["bytes"])
    cpu = result["cpu_s"] + result.get("children_cpu_s", 0.0)
    print(f"{label}: {result['files']} files, {size:.1f} MiB in {wall:.2f} s "
          f"= {size / wall:.1f} MiB/s, {result['files'] / wall:.1f} files/s; "
          f"CPU {cpu:.2f} s")
    memory = (f"  memory: RSS before {result['rss_before_kib'] / 1024:.1f} MiB, "
              f"peak {result['peak_rss_kib'] / 1024:.1f} MiB")
    print(memory)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="recordings (default 200)")
    parser.add_argument("--seconds", type=float, default=60.0,
                        help="length of each 8 kHz mono WAV (default 60 s, ~960 KB)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="uploads at once, for curl and the pipeline (default 4)")
    parser.add_argument("--ingests", type=int,
                        help="the pipeline's ingests at once (default: --concurrency)")
    parser.add_argument("--database", default="sqlite",
                        help="sqlite (default) or a postgresql+asyncpg:// server URL: "
                             "a temporary database is created there and dropped")
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 recordings")
    parser.add_argument("--phase", choices=["curl", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--user", help=argparse.SUPPRESS)
    parser.add_argument("--ftp-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase is not None:
        files = sorted(args.files.iterdir())
        if args.phase == "curl":
            asyncio.run(_curl_phase(files, args.port, args.user, args.ftp_root,
                                    args.concurrency))
        else:
            run_maybe_profiled("pipeline", lambda: _pipeline_phase(
                files, args.port, args.user, args.ftp_root, args.concurrency, args.work,
                args.db_url, args.ingests))
        return 0

    count = 20 if args.quick else args.count
    ingests = args.ingests or args.concurrency
    if count < 1 or args.concurrency < 1 or ingests < 1:
        parser.error("--count, --concurrency and --ingests must be at least 1")
    with work_folder("pbxb-bench-ftp-") as work:
        started = time.perf_counter()
        files = make_recordings(work / "wavs", count, args.seconds)
        print(f"pipeline_ftp: {count} WAV files of {args.seconds:g} s "
              f"({files[0].stat().st_size / 1000:.0f} KB each) made in "
              f"{time.perf_counter() - started:.1f} s; concurrency {args.concurrency} "
              f"(pipeline: {ingests} ingests at once, FTP target limit {args.concurrency})")
        temp_db = None
        if is_postgres(args.database):
            temp_db = asyncio.run(create_temp_database(args.database))
            db_url = temp_db.url
        else:
            db_url = f"sqlite+aiosqlite:///{work / 'bench.sqlite'}"
        try:
            with running_ftp_server(work / "ftp") as server:
                os.environ[PASSWORD_ENV] = server.account.password
                common_args = [
                    "--files", str(work / "wavs"), "--port", str(server.port),
                    "--user", server.account.user, "--ftp-root", str(server.root),
                    "--concurrency", str(args.concurrency),
                ]
                curl = run_phase(SCRIPT, ["--phase", "curl", *common_args])
                pipe = run_phase(SCRIPT, ["--phase", "pipeline", *common_args,
                                          "--work", str(work / "pipeline"),
                                          "--db-url", db_url, "--ingests", str(ingests)])
        finally:
            os.environ.pop(PASSWORD_ENV, None)
            if temp_db is not None:
                asyncio.run(drop_temp_database(temp_db))
    database = "postgresql" if temp_db is not None else "sqlite"
    _report("curl -T (baseline)", curl)
    _report(f"pipeline ({database})", pipe)
    print(f"  (finished() for all {pipe['files']} took {pipe['queue_s']:.2f} s of that)")
    print_breakdown("where the pipeline's time goes", pipe["breakdown"], pipe["wall_s"])
    print(f"ratio pipeline/curl (time): {pipe['wall_s'] / curl['wall_s']:.2f}x; every copy "
          "verified on the server")
    return 0


if __name__ == "__main__":
    sys.exit(main())
