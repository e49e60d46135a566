"""A real crash: a child process runs the pipeline and is SIGKILLed in the middle of a step.

The child is ``tests/storage_fakes.py``; it and the test share the fake Asterisk folder,
the spool, the store and the database, as a restarted service would.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from storage_fakes import DirSource, db_url, stored_files

from storage.backends.local import LocalBackend
from storage.models import Recording, RecordingStatus
from storage.pipeline import RecordingPipeline, storage_key

__all__ = ["db_url"]

TESTS = Path(__file__).resolve().parent
CHILD = TESTS / "storage_fakes.py"
# What the rows and files look like at the moment of each kill.
EXPECTED_AT_KILL = {
    "fetch": RecordingStatus.FINISHED,
    "put": RecordingStatus.PREPARED,
    "delete": RecordingStatus.STORED,
}


async def run_child_until(stage: str, db: str, work: Path) -> tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), stage, db, str(work),
        stdout=asyncio.subprocess.PIPE, env=env,
    )
    assert proc.stdout is not None
    recording_id = asterisk_name = ""
    try:
        # A bound, not a timing: a child's imports alone take seconds on a loaded machine.
        async with asyncio.timeout(90):
            while True:
                line = (await proc.stdout.readline()).decode()
                assert line, "child exited before reaching the stage"
                if line.startswith("ROW "):
                    _, recording_id, asterisk_name = line.split()
                if line.strip() == f"STAGE {stage}":
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return recording_id, asterisk_name


@pytest.mark.parametrize("stage", ["fetch", "put", "delete"])
async def test_sigkill_mid_ingest_then_resume_stores_once(
    stage: str, db_url: str, tmp_path: Path
) -> None:
    recording_id, asterisk_name = await run_child_until(stage, db_url, tmp_path)
    source = DirSource(tmp_path / "asterisk")
    data = (source.root / f"{asterisk_name}.wav").read_bytes()
    store = tmp_path / "store"

    engine = create_async_engine(db_url)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    try:
        async with sessions() as session:
            row = await session.get(Recording, recording_id)
            assert row is not None and row.status == EXPECTED_AT_KILL[stage]
        if stage == "fetch":
            assert (tmp_path / "spool" / f"{recording_id}.wav.part").exists()
        if stage == "put":
            assert len(stored_files(store)) == 1  # in the store, but the row does not say so
        if stage == "delete":
            assert source.has(asterisk_name)

        pipeline = RecordingPipeline(
            sessions, source, tmp_path / "spool", LocalBackend(store),
            retry_initial_s=0.01, retry_max_s=0.05,
        )
        async with pipeline:
            await pipeline.wait_idle()

        async with sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Recording)) == 1
            row = await session.get(Recording, recording_id)
        assert row is not None and row.status == RecordingStatus.STORED
        assert row.sha256 == hashlib.sha256(data).hexdigest()
        assert stored_files(store) == [store.resolve() / storage_key(row)]
        assert (store / storage_key(row)).read_bytes() == data
        assert not source.has(asterisk_name)
        assert list((tmp_path / "spool").iterdir()) == []
    finally:
        await engine.dispose()
