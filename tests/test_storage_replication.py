"""Copies on several backends: each verified, retried on its own, dead-lettered, revived."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from storage_fakes import DirSource, db_url, wav_bytes  # noqa: F401  (db_url: a fixture)

from storage.backends.base import StoredObject
from storage.backends.local import LocalBackend
from storage.errors import TransientStorageError
from storage.models import CopyStatus, Recording, RecordingCopy, RecordingKind, RecordingStatus
from storage.pipeline import RecordingPipeline
from storage.replication import Target, mark_sidecars_stale, render_key
from storage.schedule import CronSchedule, ScheduleError, next_slot
from storage.status import retry_dead, storage_status


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:  # noqa: F811
    engine = create_async_engine(db_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


class FlakyBackend(LocalBackend):
    """A backend that is down until told otherwise."""

    def __init__(self, root: Path, name: str) -> None:
        super().__init__(root)
        self.name = name
        self.down = True
        self.puts = 0

    async def put(self, src: Path, key: str) -> StoredObject:
        self.puts += 1
        if self.down:
            raise TransientStorageError(f"{self.name} unreachable")
        return await super().put(src, key)


def named(backend: LocalBackend, name: str) -> LocalBackend:
    backend.name = name
    return backend


async def record(
    pipeline: RecordingPipeline, source: DirSource, seconds: float = 0.5
) -> Recording:
    row = await pipeline.begin(
        call_id="call-1",
        kind=RecordingKind.CONVERSATION,
        legal_basis="consent",
        retention_class="default",
        retention_days=60,
    )
    source.put(row.asterisk_name, wav_bytes(seconds))
    await pipeline.finished(row.asterisk_name)
    return row


async def copies(
    db: async_sessionmaker[AsyncSession], recording_id: str
) -> dict[str, RecordingCopy]:
    async with db() as session:
        rows = await session.scalars(
            select(RecordingCopy).where(RecordingCopy.recording_id == recording_id)
        )
        return {c.backend: c for c in rows}


async def status_of(db: async_sessionmaker[AsyncSession], recording_id: str) -> str:
    async with db() as session:
        row = await session.get(Recording, recording_id)
    assert row is not None
    return row.status


async def test_every_target_gets_a_verified_copy_with_its_own_key_and_sidecar(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    primary = named(LocalBackend(tmp_path / "a"), "local")
    archive = named(LocalBackend(tmp_path / "b"), "archive")
    targets = [
        Target("local", primary),
        Target("archive", archive, path_template="{kind}/{recording_id}.{ext}", sidecar=True),
    ]

    async def facts(row: Recording) -> dict[str, str]:
        return {"caller": "0532***4567"}

    pipeline = RecordingPipeline(db, source, tmp_path / "spool", targets,
                                 sidecar_facts=facts)
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()

    assert await status_of(db, row.id) == RecordingStatus.STORED
    made = await copies(db, row.id)
    assert {b: c.status for b, c in made.items()} == {"local": "verified", "archive": "verified"}
    archived = tmp_path / "b" / "conversation" / f"{row.id}.wav"
    assert archived.read_bytes() == (tmp_path / "a" / made["local"].key).read_bytes()
    sidecar = json.loads((tmp_path / "b" / made["archive"].sidecar_key).read_text())  # type: ignore[operator]
    assert sidecar["recording_id"] == row.id
    assert sidecar["caller"] == "0532***4567"
    assert sidecar["stored_sha256"] == made["archive"].sha256
    assert not source.has(row.asterisk_name)
    assert list((tmp_path / "spool").iterdir()) == []


async def test_a_backend_down_for_a_while_delays_only_its_copy(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    source = DirSource(tmp_path / "asterisk")
    ftp = FlakyBackend(tmp_path / "ftp", "ftp")
    targets = [Target("local", named(LocalBackend(tmp_path / "a"), "local")), Target("ftp", ftp)]
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", targets,
        copy_retry_initial_s=100, copy_retry_max_s=200, sweep_interval_s=30,
        clock=lambda: clock[0],
    )
    async with pipeline:
        rows = [await record(pipeline, source) for _ in range(3)]
        await pipeline.wait_idle()
        for row in rows:
            assert await status_of(db, row.id) == RecordingStatus.PREPARED
            made = await copies(db, row.id)
            assert made["local"].status == CopyStatus.VERIFIED
            assert made["ftp"].status == CopyStatus.PENDING and made["ftp"].attempts == 1
            assert source.has(row.asterisk_name)  # not stored yet: Asterisk keeps its copy

        assert await pipeline.sweep() == 0  # the backoff has not passed
        ftp.down = False
        clock[0] += timedelta(seconds=201)
        assert await pipeline.sweep() == 3
        await pipeline.wait_idle()
    for row in rows:
        assert await status_of(db, row.id) == RecordingStatus.STORED
        assert not source.has(row.asterisk_name)
    assert len(list((tmp_path / "ftp").rglob("*.wav"))) == 3


async def test_dead_letter_after_max_attempts_then_retry_revives(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    ftp = FlakyBackend(tmp_path / "ftp", "ftp")
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", [Target("ftp", ftp)],
        max_attempts=3, copy_retry_initial_s=0.01, copy_retry_max_s=0.02,
    )
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()
        made = await copies(db, row.id)
        assert made["ftp"].status == CopyStatus.DEAD
        assert made["ftp"].attempts == 3
        assert "unreachable" in (made["ftp"].last_error or "")
        report = await storage_status(db)
        assert [(d.recording_id, d.backend) for d in report.dead] == [(row.id, "ftp")]
        assert not report.healthy
        assert pipeline.stats.dead_copies == 1

        ftp.down = False
        assert await retry_dead(db, backend="ftp") == 1
        await pipeline.sweep()
        await pipeline.wait_idle()
    assert await status_of(db, row.id) == RecordingStatus.STORED
    assert (await storage_status(db)).healthy


async def test_scheduled_backend_waits_for_its_slot(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = [datetime(2026, 11, 24, 14, 5, tzinfo=UTC)]
    source = DirSource(tmp_path / "asterisk")
    nightly = named(LocalBackend(tmp_path / "n"), "nightly")
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", [Target("nightly", nightly, schedule="0 2 * * *")],
        clock=lambda: clock[0],
    )
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()
        assert await status_of(db, row.id) == RecordingStatus.PREPARED
        assert list((tmp_path / "n").rglob("*.wav")) == []
        due = (await copies(db, row.id))["nightly"].next_attempt_at
        assert due is not None and due > clock[0]

        assert await pipeline.sweep() == 0  # not yet
        clock[0] = due + timedelta(seconds=1)
        assert await pipeline.sweep() == 1
        await pipeline.wait_idle()
    assert await status_of(db, row.id) == RecordingStatus.STORED


async def test_cache_days_keep_the_spool_copy_until_they_pass(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    source = DirSource(tmp_path / "asterisk")
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool",
        [Target("local", named(LocalBackend(tmp_path / "a"), "local"))],
        cache_days=2, clock=lambda: clock[0],
    )
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()
        assert [p.name for p in (tmp_path / "spool").iterdir()] == [f"{row.id}.wav"]
        clock[0] += timedelta(days=2, seconds=1)
        await pipeline.sweep()
    assert list((tmp_path / "spool").iterdir()) == []


def test_keys_stay_under_the_base_folder() -> None:
    row = Recording(
        id="0f0e", call_id="call-1", kind="evidence",
        started_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC),
    )
    assert render_key("{yyyy}/{mm}/{dd}/{hh}/{call_id}/{recording_id}.{ext}", row, "wav") == (
        "2026/01/02/03/call-1/0f0e.wav"
    )


def test_path_templates_that_could_escape_are_refused() -> None:
    from storage.backends.settings import check_path_template

    for bad in ("../{recording_id}", "/abs/{recording_id}", "{yyyy}/{nosuch}/{recording_id}",
                "{yyyy}/x.wav", "a\\{recording_id}", "{recording_id!r}"):
        with pytest.raises(ValueError):
            check_path_template(bad)


def test_cron_and_named_schedules() -> None:
    start = datetime(2026, 11, 24, 14, 5).astimezone()
    assert CronSchedule("0 2 * * *").next_after(start).hour == 2
    assert CronSchedule("*/15 * * * *").next_after(start).minute == 15
    assert CronSchedule("30 3 * * 0").next_after(start).isoweekday() == 7  # Sunday
    assert next_slot("immediate", start) == start
    assert next_slot("hourly", start).astimezone().minute == 0
    with pytest.raises(ScheduleError):
        CronSchedule("0 0 30 2 *").next_after(start)  # 30 February never comes


async def test_copies_wait_for_the_call_to_end_and_a_zero_day_class_is_never_copied(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    settled: list[str] = []

    async def on_settled(recording_id: str) -> None:
        settled.append(recording_id)

    source = DirSource(tmp_path / "asterisk")
    store = named(LocalBackend(tmp_path / "a"), "local")
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", [Target("local", store)],
        copy_after_call_ends=True, on_settled=on_settled,
    )
    async with pipeline:
        kept = await record(pipeline, source)
        await pipeline.wait_idle()
        assert await status_of(db, kept.id) == RecordingStatus.PREPARED  # call still live
        assert list((tmp_path / "a").rglob("*.wav")) == []

        await pipeline.close_call("call-1", datetime.now(UTC))
        await pipeline.wait_idle()
        assert await status_of(db, kept.id) == RecordingStatus.STORED

        zero = await pipeline.begin(
            call_id="call-2", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="none", retention_days=0,
        )
        source.put(zero.asterisk_name, wav_bytes(0.5))
        await pipeline.finished(zero.asterisk_name)
        await pipeline.wait_idle()
        await pipeline.close_call("call-2", datetime.now(UTC))
        await pipeline.wait_idle()
    assert await status_of(db, zero.id) == RecordingStatus.PREPARED  # left to retention
    assert zero.id in settled  # ...which was told at once
    assert not list((tmp_path / "a").rglob(f"{zero.id}*"))  # never copied anywhere


async def test_a_lost_prepared_file_is_fetched_again_without_duplicating_copies(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    ftp = FlakyBackend(tmp_path / "ftp", "ftp")
    targets = [Target("local", named(LocalBackend(tmp_path / "a"), "local")), Target("ftp", ftp)]
    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", targets, copy_retry_initial_s=100,
        copy_retry_max_s=200, clock=lambda: clock[0],
    )
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()
        assert await status_of(db, row.id) == RecordingStatus.PREPARED
        for leftover in (tmp_path / "spool").iterdir():
            leftover.unlink()  # an operator "cleaned up" the spool

        ftp.down = False
        clock[0] += timedelta(seconds=201)
        await pipeline.sweep()
        await pipeline.wait_idle()
    assert await status_of(db, row.id) == RecordingStatus.STORED
    made = await copies(db, row.id)
    assert sorted(made) == ["ftp", "local"]
    assert all(c.status == CopyStatus.VERIFIED for c in made.values())
    assert not source.has(row.asterisk_name)


async def test_a_changed_retention_rewrites_the_sidecar_once_the_backend_is_back(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    archive = FlakyBackend(tmp_path / "b", "archive")
    archive.down = False
    targets = [Target("archive", archive, sidecar=True)]
    pipeline = RecordingPipeline(db, source, tmp_path / "spool", targets)
    async with pipeline:
        row = await record(pipeline, source)
        await pipeline.wait_idle()
        made = (await copies(db, row.id))["archive"]
        assert made.sidecar_key is not None
        sidecar_path = tmp_path / "b" / made.sidecar_key
        assert json.loads(sidecar_path.read_text())["retain_until"] is None

        # An admin gives the recording a longer class (recordings retain ID --class C).
        new_until = datetime(2027, 11, 24, 9, 0, tzinfo=UTC)
        async with db() as session:
            stored = await session.get(Recording, row.id)
            assert stored is not None
            stored.retention_class, stored.retain_until = "sales", new_until
            await mark_sidecars_stale(session, row.id)
            await session.commit()

        archive.down = True  # the customer's server is away: the mark stays
        await pipeline.sweep()
        assert json.loads(sidecar_path.read_text())["retain_until"] is None
        assert (await copies(db, row.id))["archive"].sidecar_stale_since is not None

        archive.down = False
        await pipeline.sweep()
        sidecar = json.loads(sidecar_path.read_text())
        assert sidecar["retain_until"] == new_until.isoformat()
        assert sidecar["retention_class"] == "sales"
        assert sidecar["stored_sha256"] == made.sha256
        assert (await copies(db, row.id))["archive"].sidecar_stale_since is None
        puts = archive.puts
        await pipeline.sweep()  # nothing left to rewrite
        assert archive.puts == puts


async def test_a_stored_recording_leaves_nothing_in_the_spool_of_a_large_backlog(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Transcoded and encrypted, with a crash leftover of the fetched WAV beside it: all
    of it goes, by name, and the other recordings' files in the spool stay."""
    from storage.envelope import EnvelopeEncryptor
    from storage.keyring import Keyring, generate_master_key

    generate_master_key(tmp_path / "keys")
    keyring = Keyring.load(tmp_path / "keys", environ={})
    spool = tmp_path / "spool"
    spool.mkdir()
    others = [spool / f"other-{n}.flac" for n in range(50)]
    for other in others:
        other.write_bytes(b"queued")
    source = DirSource(tmp_path / "asterisk")
    pipeline = RecordingPipeline(
        db, source, spool,
        [Target("local", named(LocalBackend(tmp_path / "a"), "local")),
         Target("vault", named(LocalBackend(tmp_path / "v"), "vault"), encrypt=True)],
        audio_format="flac", encryptor=EnvelopeEncryptor(db, keyring),
    )
    async with pipeline:
        row = await pipeline.begin(
            call_id="call-1", kind=RecordingKind.CONVERSATION, legal_basis="consent",
            retention_class="default", retention_days=30,
        )
        # What a crash between the prepared commit and removing the fetched file leaves.
        (spool / f"{row.id}.wav").write_bytes(b"RIFF leftover")
        source.put(row.asterisk_name, wav_bytes(0.5))
        await pipeline.finished(row.asterisk_name)
        await pipeline.wait_idle()
    assert await status_of(db, row.id) == RecordingStatus.STORED
    assert sorted(spool.iterdir()) == sorted(others)


async def test_spool_removes_by_name_only_inside_itself(tmp_path: Path) -> None:
    from storage.spool import Spool

    spool = Spool(tmp_path / "spool")
    await spool.prepare()
    mine, theirs = spool.path_for("r1", "wav"), spool.path_for("r2", "wav")
    mine.write_bytes(b"a")
    theirs.write_bytes(b"b")
    assert await spool.remove_named([mine, mine, spool.part_path_for("r1", "wav")]) == 1
    assert not mine.exists() and theirs.exists()
    with pytest.raises(ValueError, match="not in the spool"):
        await spool.remove_named([tmp_path / "elsewhere.wav"])
