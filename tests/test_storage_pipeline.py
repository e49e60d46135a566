"""The pipeline end to end on real WAV files, a folder-backed fake Asterisk and a real DB."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from storage_fakes import DirSource, db_url, sessions, stored_files, wav_bytes

from storage.backends.base import StoredObject
from storage.backends.local import LocalBackend
from storage.errors import RecordingNotFound, UnsafeKey
from storage.models import Recording, RecordingKind, RecordingStatus
from storage.pipeline import LOST_IN_ASTERISK, RecordingPipeline, storage_key

__all__ = ["db_url", "sessions"]  # fixtures, imported for pytest


@dataclass
class Rig:
    sessions: async_sessionmaker[AsyncSession]
    source: DirSource
    spool: Path
    store: Path
    backend: LocalBackend

    def pipeline(self, concurrency: int = 2) -> RecordingPipeline:
        return RecordingPipeline(
            self.sessions, self.source, self.spool, self.backend,
            concurrency=concurrency, retry_initial_s=0.01, retry_max_s=0.05,
            stop_timeout_s=0.5,
        )

    async def row(self, recording_id: str) -> Recording:
        async with self.sessions() as session:
            row = await session.get(Recording, recording_id)
        assert row is not None
        return row

    async def set(self, recording_id: str, **values: object) -> None:
        async with self.sessions() as session:
            await session.execute(
                update(Recording).where(Recording.id == recording_id).values(**values)
            )
            await session.commit()

    async def count_rows(self) -> int:
        async with self.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Recording)) or 0)

    def spool_files(self) -> list[Path]:
        return sorted(self.spool.iterdir()) if self.spool.exists() else []


@pytest.fixture
async def rig(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> AsyncIterator[Rig]:
    yield Rig(
        sessions, DirSource(tmp_path / "asterisk"), tmp_path / "spool", tmp_path / "store",
        LocalBackend(tmp_path / "store"),
    )


async def begin(pipeline: RecordingPipeline, call_id: str = "call-1") -> Recording:
    return await pipeline.begin(
        call_id=call_id, kind=RecordingKind.CONVERSATION, legal_basis="consent",
        retention_class="default", retention_days=30,
    )


def assert_stored_once(rig: Rig, row: Recording, data: bytes) -> None:
    assert row.status == RecordingStatus.STORED
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert row.size_bytes == len(data)
    path = rig.store.resolve() / storage_key(row)
    assert row.location == path.as_uri()
    assert stored_files(rig.store) == [path]
    assert path.read_bytes() == data
    assert not rig.source.has(row.asterisk_name)
    assert rig.spool_files() == []


async def test_happy_path(rig: Rig) -> None:
    data = wav_bytes(2.5, samplerate=8000)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        assert row.status == RecordingStatus.RECORDING
        assert row.asterisk_name == f"pbxb-{row.id}"
        assert (await rig.row(row.id)).status == RecordingStatus.RECORDING
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        stored = await rig.row(row.id)
        assert pipeline.stats.stored == 1 and pipeline.stats.failed == 0
    assert_stored_once(rig, stored, data)
    assert stored.duration_s == pytest.approx(2.5)
    assert stored.stored_at is not None and stored.finished_at is not None
    assert stored.retain_until is None  # the call has not ended yet
    started = stored.started_at.astimezone(UTC)
    assert storage_key(stored) == f"{started:%Y/%m/%d}/call-1/{stored.id}.wav"


async def test_a_busy_loop_holds_the_ingest_until_calls_are_served(rig: Rig) -> None:
    """Calls first (storage.loop_lag): while the gate is shut no step runs, the recording
    stays in Asterisk, and it is stored once the gate opens."""
    data = wav_bytes(1.0, samplerate=8000)
    gate = asyncio.Event()
    waits = 0

    async def calm() -> None:
        nonlocal waits
        waits += 1
        await gate.wait()

    pipeline = RecordingPipeline(
        rig.sessions, rig.source, rig.spool, rig.backend,
        retry_initial_s=0.01, retry_max_s=0.05, stop_timeout_s=0.5, calm=calm,
    )
    async with pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await asyncio.sleep(0.1)
        assert (await rig.row(row.id)).status == RecordingStatus.FINISHED
        assert rig.source.has(row.asterisk_name) and rig.spool_files() == []
        gate.set()
        await asyncio.wait_for(pipeline.wait_idle(), 5)
        stored = await rig.row(row.id)
    assert_stored_once(rig, stored, data)
    assert waits >= 3  # asked before every step: fetch, prepare, copy, clean-up


async def test_source_unavailable_is_retried_not_failed(rig: Rig) -> None:
    datas = [wav_bytes(0.5 + i / 10, samplerate=16000) for i in range(3)]
    async with rig.pipeline() as pipeline:
        rows = [await begin(pipeline, f"call-{i}") for i in range(3)]
        for row, data in zip(rows, datas, strict=True):
            rig.source.put(row.asterisk_name, data)
        rig.source.unavailable_calls = 7
        for row in rows:
            await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        assert pipeline.stats.retries >= 7
        assert pipeline.stats.stored == 3
    for row, data in zip(rows, datas, strict=True):
        stored = await rig.row(row.id)
        assert stored.status == RecordingStatus.STORED
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert len(stored_files(rig.store)) == 3


async def test_failed_source_delete_keeps_row_stored_and_is_retried(rig: Rig) -> None:
    data = wav_bytes(1.0)
    rig.source.delete_unavailable_calls = 3
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        assert pipeline.stats.source_delete_failures == 3
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_stop_leaves_undeletable_copy_for_resume(rig: Rig) -> None:
    data = wav_bytes(1.0)
    rig.source.delete_unavailable_calls = 10**6
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await rig.source.delete_refused.wait()
    assert (await rig.row(row.id)).status == RecordingStatus.STORED
    assert rig.source.has(row.asterisk_name)
    rig.source.delete_unavailable_calls = 0
    async with rig.pipeline() as pipeline:
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)


# -- crashes simulated by leaving the rows and files as a kill at each point would ----------


async def _crash_fixture(rig: Rig, data: bytes) -> Recording:
    """A row begun and its file in Asterisk, with no pipeline running on it."""
    pipeline = rig.pipeline()
    row = await begin(pipeline)
    rig.source.put(row.asterisk_name, data)
    return row


async def resume_and_check(rig: Rig, row: Recording, data: bytes) -> None:
    async with rig.pipeline() as pipeline:
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)
    assert await rig.count_rows() == 1


async def test_resume_recording_row_found_finished(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)  # RecordingFinished lost while we were down
    await resume_and_check(rig, row, data)


async def test_resume_finished_row_without_spool(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)
    await rig.set(row.id, status=RecordingStatus.FINISHED.value)
    await resume_and_check(rig, row, data)


async def test_resume_discards_half_written_part(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)
    await rig.set(row.id, status=RecordingStatus.FINISHED.value)
    rig.spool.mkdir()
    (rig.spool / f"{row.id}.wav.part").write_bytes(data[:100])
    await resume_and_check(rig, row, data)
    assert rig.source.fetches == [row.asterisk_name]


async def test_resume_spooled_row_uses_spool_even_if_source_lost_it(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)
    rig.spool.mkdir()
    spool_file = rig.spool / f"{row.id}.wav"
    spool_file.write_bytes(data)
    await rig.set(row.id, status=RecordingStatus.SPOOLED.value, spool_path=str(spool_file))
    (rig.source.root / f"{row.asterisk_name}.wav").unlink()
    await resume_and_check(rig, row, data)
    assert rig.source.fetches == []


async def test_resume_after_put_before_commit_keeps_one_copy(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)
    rig.spool.mkdir()
    spool_file = rig.spool / f"{row.id}.wav"
    spool_file.write_bytes(data)
    await rig.set(row.id, status=RecordingStatus.SPOOLED.value, spool_path=str(spool_file))
    await rig.backend.put(spool_file, storage_key(await rig.row(row.id)))
    # and a temporary of an interrupted second put beside it
    key_path = rig.store / storage_key(await rig.row(row.id))
    (key_path.parent / f".{key_path.name}.tmp-deadbeef").write_bytes(data[:50])
    await resume_and_check(rig, row, data)


async def test_resume_stored_row_still_in_asterisk_is_cleaned(rig: Rig) -> None:
    data = wav_bytes(1.0)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
    rig.source.put(row.asterisk_name, data)  # as if the delete never happened
    rig.spool.mkdir(exist_ok=True)
    (rig.spool / f"{row.id}.wav").write_bytes(data)
    async with rig.pipeline() as pipeline:
        report = await pipeline.resume()
        await pipeline.wait_idle()
        assert pipeline.stats.stored == 0
    assert report.queued == []
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_resume_leaves_live_recording_until_finished(rig: Rig) -> None:
    data = wav_bytes(1.0)
    row = await _crash_fixture(rig, data)
    rig.source.live.add(row.asterisk_name)
    async with rig.pipeline() as pipeline:
        await pipeline.wait_idle()
        assert (await rig.row(row.id)).status == RecordingStatus.RECORDING
        assert rig.source.fetches == []
        rig.source.live.discard(row.asterisk_name)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_the_sweep_takes_in_a_recording_whose_end_never_came(rig: Rig) -> None:
    """The call closed, but Asterisk never sent RecordingFinished (a bridge destroyed at
    hangup can take the event with it): the sweep asks Asterisk and stores the file; while
    Asterisk still writes it, or before its call closed, the sweep leaves it alone."""
    data = wav_bytes(1.0)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        rig.source.live.add(row.asterisk_name)
        assert await pipeline.sweep() == 0  # its call is still on
        await pipeline.close_call("call-1", datetime.now(UTC))
        assert await pipeline.sweep() == 1
        await pipeline.wait_idle()
        assert (await rig.row(row.id)).status == RecordingStatus.RECORDING  # still live
        rig.source.live.discard(row.asterisk_name)  # ...and its end is lost
        assert await pipeline.sweep() == 1
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_resume_recording_missing_in_asterisk_fails(rig: Rig) -> None:
    pipeline = rig.pipeline()
    row = await begin(pipeline)
    async with rig.pipeline() as pipeline:
        await pipeline.wait_idle()
    lost = await rig.row(row.id)
    assert lost.status == RecordingStatus.FAILED
    assert lost.error == LOST_IN_ASTERISK


async def test_orphans_are_reported_not_deleted(rig: Rig) -> None:
    rig.source.put("someone-elses-recording", wav_bytes(0.2))
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, wav_bytes(0.3))
        rig.source.live.add(row.asterisk_name)
        assert await pipeline.orphans() == ["someone-elses-recording"]
        report = await pipeline.resume()
        assert report.orphans == ["someone-elses-recording"]
        await pipeline.wait_idle()
    assert rig.source.has("someone-elses-recording")
    assert "someone-elses-recording" not in rig.source.deletes


# -- verdicts ---------------------------------------------------------------------------


async def test_corrupt_wav_fails_and_asterisk_copy_is_kept(rig: Rig) -> None:
    garbage = b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(500)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, garbage)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        assert pipeline.stats.failed == 1
    failed = await rig.row(row.id)
    assert failed.status == RecordingStatus.FAILED
    assert failed.error is not None and failed.error.startswith("corrupt recording")
    assert rig.source.has(row.asterisk_name)
    assert rig.source.deletes == []
    assert stored_files(rig.store) == []
    assert rig.spool_files() == []


async def test_mark_failed_and_unknown_names(rig: Rig) -> None:
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        await pipeline.mark_failed(row.id, "ARI record: 409 conflict")
        failed = await rig.row(row.id)
        assert failed.status == RecordingStatus.FAILED
        assert failed.error == "ARI record: 409 conflict"
        assert await pipeline.finished("pbxb-not-ours") is None
        assert await pipeline.failed_by_name("pbxb-not-ours", "x") is None
        other = await begin(pipeline)
        by_name = await pipeline.failed_by_name(other.asterisk_name, "Asterisk: disk full")
        assert by_name is not None and by_name.status == RecordingStatus.FAILED
        assert (await rig.row(other.id)).error == "Asterisk: disk full"
        assert pipeline.stats.failed == 2
        with pytest.raises(RecordingNotFound):
            await pipeline.mark_failed("no-such-id", "x")
        with pytest.raises(UnsafeKey):
            await begin(pipeline, call_id="../../etc")


async def test_close_call_sets_retain_until(rig: Rig) -> None:
    ended = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    async with rig.pipeline() as pipeline:
        stored = await begin(pipeline, "call-7")
        rig.source.put(stored.asterisk_name, wav_bytes(0.5))
        await pipeline.finished(stored.asterisk_name)
        await pipeline.wait_idle()
        evidence = await pipeline.begin(
            call_id="call-7", kind=RecordingKind.EVIDENCE, legal_basis="consent",
            retention_class="evidence", retention_days=730,
        )
        other = await begin(pipeline, "call-8")
        assert (await rig.row(stored.id)).retain_until is None
        assert await pipeline.close_call("call-7", ended) == 2
    assert (await rig.row(stored.id)).retain_until == ended + timedelta(days=30)
    assert (await rig.row(evidence.id)).retain_until == ended + timedelta(days=730)
    assert (await rig.row(other.id)).retain_until is None


# -- running behaviour ------------------------------------------------------------------


async def test_concurrency_is_bounded(rig: Rig) -> None:
    rig.source.fetch_chunk_delay_s = 0.01
    datas = [wav_bytes(0.3) for _ in range(5)]
    async with rig.pipeline(concurrency=2) as pipeline:
        rows = [await begin(pipeline, f"call-{i}") for i in range(5)]
        for row, data in zip(rows, datas, strict=True):
            rig.source.put(row.asterisk_name, data)
            await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        assert pipeline.stats.stored == 5
    assert rig.source.max_active_fetches == 2
    assert len(stored_files(rig.store)) == 5


async def test_resume_while_ingesting_leaves_the_running_ingest_alone(rig: Rig) -> None:
    rig.source.fetch_chunk_delay_s = 0.02
    data = wav_bytes(0.5)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await rig.source.fetch_started.wait()
        report = await pipeline.resume()  # as after an ARI reconnect
        assert report.queued == [] and report.spool_files_removed == 0
        await pipeline.finished(row.asterisk_name)  # a duplicate event
        await pipeline.wait_idle()
    assert rig.source.fetches == [row.asterisk_name]
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_stop_cancels_a_slow_fetch_and_next_start_resumes_it(rig: Rig) -> None:
    rig.source.fetch_chunk_delay_s = 10
    data = wav_bytes(1.0)
    pipeline = rig.pipeline()
    await pipeline.start()
    row = await begin(pipeline)
    rig.source.put(row.asterisk_name, data)
    await pipeline.finished(row.asterisk_name)
    await rig.source.fetch_started.wait()
    await pipeline.stop(timeout_s=0.05)
    assert (await rig.row(row.id)).status == RecordingStatus.FINISHED
    assert rig.spool_files() == []  # the cancelled .part was discarded
    rig.source.fetch_chunk_delay_s = 0
    await resume_and_check(rig, row, data)


class FlakySessions:
    """A session factory whose database is 'down' for the next ``failures`` sessions."""

    def __init__(self, inner: async_sessionmaker[AsyncSession]) -> None:
        self.inner = inner
        self.failures = 0

    def __call__(self, **kw: object) -> AsyncSession:
        if self.failures > 0:
            self.failures -= 1
            raise sa_exc.OperationalError("connect", {}, ConnectionRefusedError("db down"))
        return self.inner(**kw)


async def test_database_errors_are_retried(rig: Rig) -> None:
    flaky = FlakySessions(rig.sessions)
    data = wav_bytes(0.5)
    pipeline = RecordingPipeline(
        cast(async_sessionmaker[AsyncSession], flaky), rig.source, rig.spool, rig.backend,
        retry_initial_s=0.01, retry_max_s=0.02,
    )
    async with pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        flaky.failures = 4
        await pipeline.wait_idle()
        assert pipeline.stats.retries >= 1
    assert flaky.failures == 0
    assert_stored_once(rig, await rig.row(row.id), data)


class FullDiskSource(DirSource):
    """Writing into the spool fails with ENOSPC, as on a full disk, while ``full``."""

    full = True

    async def _copy(self, src: Path, dest: Path) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device", str(dest))
        return await super()._copy(src, dest)


def disk_errors(area: str) -> float:
    return REGISTRY.get_sample_value("pbx_bridge_disk_errors_total", {"area": area}) or 0.0


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def test_a_full_spool_is_a_disk_error_the_recording_waits_in_asterisk(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    source = FullDiskSource(rig.source.root)
    data = wav_bytes(0.5)
    before = disk_errors("spool")
    pipeline = RecordingPipeline(
        rig.sessions, source, rig.spool, rig.backend, retry_initial_s=0.01, retry_max_s=0.02,
    )
    async with pipeline:
        row = await begin(pipeline)
        source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await wait_for(lambda: disk_errors("spool") >= before + 3)
        # Nothing lost and nothing given up: still finished, still in Asterisk.
        assert (await rig.row(row.id)).status == RecordingStatus.FINISHED
        assert source.has(row.asterisk_name) and rig.spool_files() == []
        source.full = False  # space freed
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and f"spool folder {rig.spool}: No space left on device" in errors[0].message
    assert "kept in Asterisk, will retry" in errors[0].message
    assert errors[0].exc_info is None  # a clear line, not a traceback


async def test_a_spool_folder_replaced_by_a_file_is_retried_until_it_is_back(rig: Rig) -> None:
    data = wav_bytes(0.5)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        rig.spool.rmdir()
        rig.spool.write_text("not a folder")  # an admin's mistake, a failed mount
        before = disk_errors("spool")
        await pipeline.finished(row.asterisk_name)
        await wait_for(lambda: disk_errors("spool") >= before + 2)
        assert (await rig.row(row.id)).status == RecordingStatus.FINISHED
        assert rig.source.has(row.asterisk_name)
        rig.spool.unlink()
        rig.spool.mkdir()
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)


class MisreportingBackend(LocalBackend):
    """Its first put reports a digest that does not match what was sent."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts = 0

    async def put(self, src: Path, key: str) -> StoredObject:
        stored = await super().put(src, key)
        self.puts += 1
        return replace(stored, sha256="0" * 64) if self.puts == 1 else stored


async def test_stored_copy_that_does_not_verify_is_put_again(rig: Rig) -> None:
    backend = MisreportingBackend(rig.store)
    rig.backend = backend
    data = wav_bytes(0.5)
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
        assert pipeline.stats.copy_failures == 1
    assert backend.puts == 2
    assert_stored_once(rig, await rig.row(row.id), data)


async def test_a_local_storage_disk_error_is_named_counted_and_retried(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    data = wav_bytes(0.5)
    rig.store.write_text("local storage is not a folder any more")
    before = disk_errors("local")
    async with rig.pipeline() as pipeline:
        row = await begin(pipeline)
        rig.source.put(row.asterisk_name, data)
        await pipeline.finished(row.asterisk_name)
        await wait_for(lambda: disk_errors("local") > before)
        assert (await rig.row(row.id)).status == RecordingStatus.PREPARED
        assert rig.source.has(row.asterisk_name)  # Asterisk keeps it meanwhile
        rig.store.unlink()
        rig.store.mkdir()
        await pipeline.wait_idle()
    assert_stored_once(rig, await rig.row(row.id), data)
    assert any(
        r.levelno == logging.ERROR and f"local folder {rig.store}" in r.getMessage()
        for r in caplog.records
    )


async def test_the_sweeper_survives_an_unexpected_error(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = RecordingPipeline(rig.sessions, rig.source, rig.spool, rig.backend,
                                 sweep_interval_s=0.01)
    sweeps = 0
    real_sweep = pipeline.sweep

    async def sweep() -> int:
        nonlocal sweeps
        sweeps += 1
        if sweeps == 1:
            raise RuntimeError("a bug in the first sweep")
        return await real_sweep()

    def failures() -> float:
        labels = {"job": "pipeline_sweep", "kind": "unexpected"}
        return REGISTRY.get_sample_value("pbx_bridge_job_failures_total", labels) or 0.0

    before = failures()
    monkeypatch.setattr(pipeline, "sweep", sweep)
    async with pipeline:
        await wait_for(lambda: sweeps >= 3)  # it went on sweeping after the bug
    assert failures() == before + 1
