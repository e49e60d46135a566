"""Test doubles and fixtures for the storage pipeline tests.

``DirSource`` stands in for Asterisk's stored recordings: files live in a folder (so a
killed child process and the test see the same "Asterisk"), and it can be told to be
unreachable, to hold a recording as still LIVE, or to trickle a fetch slowly.

Run as a script it is the child of the SIGKILL crash test: it ingests one recording with
a slow step and prints a marker when it is in the middle of that step.
"""

from __future__ import annotations

import asyncio
import io
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import numpy as np
import pytest
import soundfile
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from storage.backends.base import StoredObject
from storage.backends.local import LocalBackend
from storage.models import Base
from storage.source import SourceMissing, SourceState, SourceUnavailable

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def wav_bytes(seconds: float = 1.0, samplerate: int = 8000, channels: int = 1) -> bytes:
    frames = round(seconds * samplerate)
    t = np.arange(frames) / samplerate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    data = np.repeat(tone[:, None], channels, axis=1) if channels > 1 else tone
    buf = io.BytesIO()
    soundfile.write(buf, data, samplerate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class DirSource:
    """A RecordingSource over a folder: ``<root>/<name>.<fmt>``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.live: set[str] = set()
        self.unavailable_calls = 0  # that many next calls raise SourceUnavailable
        self.always_unavailable = False
        self.fetch_chunk_delay_s = 0.0
        self.fetch_started = asyncio.Event()
        self.fetches: list[str] = []
        self.active_fetches = 0
        self.max_active_fetches = 0
        self.deletes: list[str] = []
        self.delete_unavailable_calls = 0
        self.delete_refused = asyncio.Event()

    def put(self, name: str, data: bytes, fmt: str = "wav") -> None:
        (self.root / f"{name}.{fmt}").write_bytes(data)

    def has(self, name: str, fmt: str = "wav") -> bool:
        return (self.root / f"{name}.{fmt}").exists()

    def _gate(self) -> None:
        if self.always_unavailable:
            raise SourceUnavailable("fake Asterisk is down")
        if self.unavailable_calls > 0:
            self.unavailable_calls -= 1
            raise SourceUnavailable("fake Asterisk is down for a while")

    async def fetch(self, name: str, format: str, dest: Path) -> int:
        self._gate()
        src = self.root / f"{name}.{format}"
        if name in self.live or not src.exists():
            raise SourceMissing(name)
        self.fetches.append(name)
        self.active_fetches += 1
        self.max_active_fetches = max(self.max_active_fetches, self.active_fetches)
        try:
            return await self._copy(src, dest)
        finally:
            self.active_fetches -= 1

    async def _copy(self, src: Path, dest: Path) -> int:
        data = await asyncio.to_thread(src.read_bytes)
        if not self.fetch_chunk_delay_s:
            await asyncio.to_thread(dest.write_bytes, data)
            return len(data)
        with open(dest, "wb") as fh:  # noqa: ASYNC230 - tiny writes, slowness is the point
            for start in range(0, len(data), 1024):
                fh.write(data[start : start + 1024])
                fh.flush()
                self.fetch_started.set()
                await asyncio.sleep(self.fetch_chunk_delay_s)
        return len(data)

    async def delete(self, name: str, format: str) -> None:
        self._gate()
        if self.delete_unavailable_calls > 0:
            self.delete_unavailable_calls -= 1
            self.delete_refused.set()
            raise SourceUnavailable("fake Asterisk refuses deletes for a while")
        self.deletes.append(name)
        await asyncio.to_thread((self.root / f"{name}.{format}").unlink, missing_ok=True)

    async def state(self, name: str) -> SourceState:
        self._gate()
        if name in self.live:
            return SourceState.LIVE
        if any(self.root.glob(f"{name}.*")):
            return SourceState.STORED
        return SourceState.MISSING

    async def list_stored(self) -> list[str]:
        self._gate()
        return sorted(
            p.name.rsplit(".", 1)[0] for p in self.root.iterdir() if p.stem not in self.live
        )


def stored_files(root: Path) -> list[Path]:
    """Every file in the store, temporaries included (there must be none)."""
    return sorted(p for p in root.rglob("*") if p.is_file())


async def create_pg_database() -> str:
    name = f"pbxb_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh database with the tables created, on SQLite and on PostgreSQL."""
    pg_name: str | None = None
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    else:
        try:
            pg_name = await create_pg_database()
        except (OSError, asyncpg.PostgresError) as exc:
            pytest.fail(f"PostgreSQL at 127.0.0.1 not usable: {exc}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}"
    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    try:
        yield url
    finally:
        if pg_name is not None:
            await drop_pg_database(pg_name)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(db_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


class SlowBackend(LocalBackend):
    """Pauses right after the stored copy is in place, before the pipeline commits it."""

    def __init__(self, root: Path, pause_s: float) -> None:
        super().__init__(root)
        self.pause_s = pause_s

    async def put(self, src: Path, key: str) -> StoredObject:
        stored = await super().put(src, key)
        print("STAGE put", flush=True)
        await asyncio.sleep(self.pause_s)
        return stored


async def _child(stage: str, db: str, work: Path) -> None:
    """Begin and finish one recording, then hang in ``stage`` until SIGKILLed."""
    from storage.models import RecordingKind
    from storage.pipeline import RecordingPipeline

    engine = create_async_engine(db)
    factory = async_sessionmaker(engine, expire_on_commit=False)
    source = DirSource(work / "asterisk")
    backend: LocalBackend = LocalBackend(work / "store")
    if stage == "fetch":
        source.fetch_chunk_delay_s = 0.5
    elif stage == "put":
        backend = SlowBackend(work / "store", 60)
    elif stage == "delete":
        source.delete_unavailable_calls = 10**6
    pipeline = RecordingPipeline(
        factory, source, work / "spool", backend, retry_initial_s=0.05, retry_max_s=0.1
    )
    async with pipeline:
        row = await pipeline.begin(
            call_id="call-crash", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=30,
        )
        source.put(row.asterisk_name, wav_bytes(2.0))
        print(f"ROW {row.id} {row.asterisk_name}", flush=True)
        await pipeline.finished(row.asterisk_name)
        if stage == "fetch":
            await source.fetch_started.wait()
            print("STAGE fetch", flush=True)
        elif stage == "delete":
            await source.delete_refused.wait()
            print("STAGE delete", flush=True)
        await asyncio.sleep(60)


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2], Path(sys.argv[3])))

__all__ = ["DirSource", "db_url", "sessions", "stored_files", "wav_bytes"]
