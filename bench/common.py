"""What both benchmarks share: phases in their own process, peak memory, servers, files.

Peak RSS cannot be reset inside a process, so every measured phase runs in a fresh
subprocess (``run_phase``) that prints one ``RESULT {json}`` line; its own ``VmHWM`` is
then the peak of that phase alone (plus the interpreter and imports, reported separately
as the RSS just before the timed part starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    # The test suite's real-server launchers and fakes are reused, not copied.
    sys.path.insert(0, str(TESTS))

from backend_servers import FtpServer, TestAccount, ensure_test_account  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlalchemy.engine import Connection, make_url  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

RESULT_MARK = "RESULT "
MIB = 1024 * 1024

P = ParamSpec("P")
R = TypeVar("R")


class PhaseFailed(RuntimeError):
    """A benchmark phase's subprocess exited non-zero or printed no result."""


class BenchCheckFailed(RuntimeError):
    """The measured run did not do what it must (a copy missing, a file left behind)."""


# -- memory ------------------------------------------------------------------------------


def _status_kib(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def rss_kib() -> int:
    """Resident set size now."""
    return _status_kib("VmRSS")


def peak_rss_kib() -> int:
    """This process's peak RSS so far (``VmHWM``; ru_maxrss as a fallback)."""
    return _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- phases in their own process ------------------------------------------------------------


def emit_result(result: dict[str, Any]) -> None:
    """The child's answer to ``run_phase``: one line, last on stdout."""
    print(RESULT_MARK + json.dumps(result), flush=True)


def run_phase(script: Path, args: list[str], timeout_s: float = 1800.0) -> dict[str, Any]:
    """Run ``script`` with ``args`` in a fresh interpreter and return its RESULT."""
    argv = [sys.executable, str(script), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise PhaseFailed(
            f"{' '.join(args)} exited {done.returncode}:\n{done.stdout[-3000:]}"
            f"\n{done.stderr[-3000:]}"
        )
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            result: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return result
    raise PhaseFailed(f"{' '.join(args)} printed no result:\n{done.stderr[-3000:]}")


# -- where the time goes ------------------------------------------------------------------

PROFILE_ENV = "PBXB_BENCH_PROFILE"  # a folder: each timed phase writes <phase>.prof there


def run_maybe_profiled(phase: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())``, under cProfile when $PBXB_BENCH_PROFILE names a folder.

    cProfile sees only the event loop's thread, which is what matters here: work on the
    loop delays every other task (worker-thread time shows in the Stopwatch instead).
    """
    folder = os.environ.get(PROFILE_ENV)
    if not folder:
        asyncio.run(main())
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        asyncio.run(main())
    finally:
        profiler.disable()
        Path(folder).mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(str(Path(folder) / f"{phase}.prof"))


@dataclass
class Stopwatch:
    """Summed time and call count per named step.

    Steps overlap when several ingests run at once, so sums can exceed the wall time:
    they say which step costs most, not what fraction of the wall clock it fills.
    """

    totals: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        entry = self.totals.setdefault(name, [0.0, 0.0])
        entry[0] += seconds
        entry[1] += 1

    def timed(self, name: str, fn: Callable[P, R]) -> Callable[P, R]:
        """For blocking functions (run in worker threads): the thread's own time."""

        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        return wrapper

    def timed_async(
        self, name: str, fn: Callable[P, Awaitable[R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            start = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - start)

        return wrapper

    def wrap_blocking(self, owner: object, attr: str, name: str) -> None:
        """Time ``owner.attr`` (a module function run in threads) where callers look it up."""
        setattr(owner, attr, self.timed(name, getattr(owner, attr)))

    def wrap_async(self, owner: object, attr: str, name: str) -> None:
        """Time the coroutine function ``owner.attr`` (a module's or one instance's)."""
        setattr(owner, attr, self.timed_async(name, getattr(owner, attr)))

    def time_database(self, engine: AsyncEngine) -> None:
        """Statement time as the driver reports it (commits are counted, not timed)."""

        def before(conn: Connection, *_: object) -> None:
            conn.info.setdefault("bench_t0", []).append(time.perf_counter())

        def after(conn: Connection, *_: object) -> None:
            self.add("db statements", time.perf_counter() - conn.info["bench_t0"].pop())

        def on_commit(conn: Connection) -> None:
            self.add("db commits (count only)", 0.0)

        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)
        event.listen(engine.sync_engine, "commit", on_commit)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {
            name: {"seconds": round(total, 4), "calls": int(calls)}
            for name, (total, calls) in sorted(self.totals.items(), key=lambda kv: -kv[1][0])
        }


def print_breakdown(title: str, breakdown: dict[str, dict[str, float]], wall_s: float) -> None:
    if not breakdown:
        return
    print(f"  {title} (summed over concurrent tasks; wall {wall_s:.2f} s):")
    for name, item in breakdown.items():
        calls = int(item["calls"])
        per = f", {item['seconds'] / calls * 1000:.2f} ms each" if calls and item["seconds"] else ""
        print(f"    {name:<32} {item['seconds']:8.2f} s  {calls:7d} calls{per}")


# -- files and folders ----------------------------------------------------------------------


@contextlib.contextmanager
def work_folder(prefix: str) -> Iterator[Path]:
    """A scratch folder the FTP test account can traverse (vsftpd drops to that user)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def make_recordings(folder: Path, count: int, seconds: float) -> list[Path]:
    """``count`` distinct WAV files (a tone; the last bytes differ so every hash does)."""
    from storage_fakes import wav_bytes

    folder.mkdir(parents=True, exist_ok=True)
    audio = bytearray(wav_bytes(seconds))
    paths = []
    for index in range(count):
        audio[-4:] = index.to_bytes(4, "little")  # four samples of the tone's tail
        path = folder / f"rec-{index:06d}.wav"
        path.write_bytes(audio)
        paths.append(path)
    return paths


# -- servers and databases ---------------------------------------------------------------


@contextlib.contextmanager
def running_ftp_server(workdir: Path) -> Iterator[FtpServer]:
    """A real vsftpd on 127.0.0.1 (the test suite's launcher), stopped on the way out."""
    account: TestAccount = ensure_test_account()
    server = FtpServer(workdir, account)
    try:
        server.server.start()
        yield server
    finally:
        server.server.stop()


def is_postgres(url: str) -> bool:
    return url.startswith("postgresql")


@dataclass(frozen=True)
class TempDatabase:
    url: str  # what the benchmark connects to
    name: str
    admin_dsn: str  # the server's maintenance database, to drop it again


async def create_temp_database(server_url: str) -> TempDatabase:
    """A fresh database on the PostgreSQL server that ``server_url`` names."""
    import asyncpg  # type: ignore[import-untyped]

    parsed = make_url(server_url)
    name = f"pbxb_bench_{uuid.uuid4().hex[:10]}"
    admin = parsed.set(drivername="postgresql", database="postgres")
    admin_dsn = admin.render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return TempDatabase(parsed.set(database=name).render_as_string(hide_password=False),
                        name, admin_dsn)


async def drop_temp_database(database: TempDatabase) -> None:
    import asyncpg

    conn = await asyncpg.connect(database.admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.contextmanager
def bench_database(server: str, work: Path) -> Iterator[tuple[str, str]]:
    """(URL, "postgresql" or "sqlite") for one benchmark run: a throw-away database on
    the PostgreSQL server ``server`` names, dropped afterwards, or a SQLite file in
    ``work`` for anything else."""
    if not is_postgres(server):
        yield f"sqlite+aiosqlite:///{work / 'bench.sqlite'}", "sqlite"
        return
    temp_db = asyncio.run(create_temp_database(server))
    try:
        yield temp_db.url, "postgresql"
    finally:
        asyncio.run(drop_temp_database(temp_db))


def mb(size_bytes: int) -> float:
    return size_bytes / MIB


__all__ = [
    "BenchCheckFailed",
    "FtpServer",
    "PhaseFailed",
    "Stopwatch",
    "children_cpu_seconds",
    "cpu_seconds",
    "emit_result",
    "make_recordings",
    "peak_rss_kib",
    "print_breakdown",
    "rss_kib",
    "run_phase",
    "running_ftp_server",
    "work_folder",
]
