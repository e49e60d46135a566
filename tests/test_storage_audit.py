"""The copy audit on local backends: damage found, repaired from the right source, or
reported; stamps rotate through the copies; the sweeper runs it; ``storage verify``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import clean_pbx_env, cli
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from storage_fakes import DirSource, db_url, wav_bytes

from storage.audit import (
    DEFERRED,
    NO_INTACT_COPY,
    REQUEUED,
    UNREPAIRABLE,
    audit_copies,
    recheck_dead_copies,
)
from storage.backends.base import ObjectInfo
from storage.backends.local import LocalBackend
from storage.database import make_engine, make_session_factory
from storage.envelope import EnvelopeEncryptor
from storage.errors import BackendUnavailable
from storage.keyring import Keyring, generate_master_key
from storage.models import Base, CopyStatus, Recording, RecordingCopy, RecordingKind
from storage.pipeline import RecordingPipeline
from storage.replication import Target
from storage.status import retry_dead, storage_status

__all__ = ["clean_pbx_env", "db_url"]  # fixtures, imported for pytest


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(db_url)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/lite.sqlite")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def named(root: Path, name: str) -> LocalBackend:
    backend = LocalBackend(root)
    backend.name = name
    return backend


async def record(pipeline: RecordingPipeline, source: DirSource, data: bytes) -> str:
    row = await pipeline.begin(
        call_id="call-a", kind=RecordingKind.CONVERSATION, legal_basis="consent",
        retention_class="default", retention_days=30,
    )
    source.put(row.asterisk_name, data)
    await pipeline.finished(row.asterisk_name)
    return row.id


async def copies(db: async_sessionmaker[AsyncSession], rid: str) -> dict[str, RecordingCopy]:
    async with db() as session:
        rows = await session.scalars(select(RecordingCopy).where(RecordingCopy.recording_id == rid))
        return {c.backend: c for c in rows}


async def status_of(db: async_sessionmaker[AsyncSession], rid: str) -> str:
    async with db() as session:
        row = await session.get(Recording, rid)
    assert row is not None
    return row.status


async def stamps(db: async_sessionmaker[AsyncSession], ids: list[str]) -> dict[str, datetime]:
    found: dict[str, datetime] = {}
    for rid in ids:
        for c in (await copies(db, rid)).values():
            assert c.verified_at is not None
            found[c.id] = c.verified_at
    return found


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_damaged_copies_are_requeued_and_stamps_rotate_in_batches(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    a, b = named(tmp_path / "a", "a"), named(tmp_path / "b", "b")
    pipeline = RecordingPipeline(db, source, tmp_path / "spool", [Target("a", a), Target("b", b)],
                                 audit_interval_s=0)
    audio = [wav_bytes(0.3 + i / 10) for i in range(3)]
    async with pipeline:
        ids = [await record(pipeline, source, data) for data in audio]
        await pipeline.wait_idle()
        before = await stamps(db, ids)

        # A bounded batch: 4 of the 6 copies, the oldest-proven first.
        report = await pipeline.audit(limit=4)
        assert report.checked == 4 and report.intact == 4 and report.clean
        after = await stamps(db, ids)
        unproven = {cid for cid, stamp in after.items() if stamp == before[cid]}
        assert len(unproven) == 2
        assert min(before[c] for c in unproven) >= max(
            before[c] for c in after if c not in unproven
        )
        # The next batch takes the two not yet proven.
        report = await pipeline.audit(limit=2)
        assert report.checked == 2
        latest = await stamps(db, ids)
        assert all(latest[c] != before[c] for c in unproven)

        key_a0 = (await copies(db, ids[0]))["a"].key
        key_b1 = (await copies(db, ids[1]))["b"].key
        os.truncate(tmp_path / "a" / key_a0, 10)
        (tmp_path / "b" / key_b1).unlink()
        report = await pipeline.audit(limit=100)
        assert sorted((f.recording_id, f.backend, f.problem, f.outcome)
                      for f in report.findings) == sorted([
            (ids[0], "a", f"size 10 bytes, expected {len(audio[0])}", REQUEUED),
            (ids[1], "b", "missing", REQUEUED),
        ])
        assert sorted(report.requeued) == sorted(ids[:2]) and report.intact == 4
        await pipeline.wait_idle()
    for rid, data in zip(ids, audio, strict=True):
        assert await status_of(db, rid) == "stored"
        made = await copies(db, rid)
        assert {c.status for c in made.values()} == {"verified"}
        for name, c in made.items():
            assert (tmp_path / name / c.key).read_bytes() == data
            assert c.last_error is None
    assert list((tmp_path / "spool").iterdir()) == []


async def test_repair_prefers_the_local_cache(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    a = named(tmp_path / "a", "a")
    pipeline = RecordingPipeline(lite, source, tmp_path / "spool", [Target("a", a)],
                                 cache_days=5, audit_interval_s=0)
    data = wav_bytes(0.4)
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
        key = (await copies(lite, rid))["a"].key
        (tmp_path / "a" / key).unlink()  # the only remote copy: the cache must serve
        report = await pipeline.audit()
        assert report.requeued == [rid]
        await pipeline.wait_idle()
    assert (tmp_path / "a" / key).read_bytes() == data
    assert await status_of(lite, rid) == "stored"


async def test_repair_from_an_encrypted_copy_needs_the_keys(
    db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    generate_master_key(tmp_path / "keys")
    keyring = Keyring.load(tmp_path / "keys", environ={})
    source = DirSource(tmp_path / "asterisk")
    targets = [Target("a", named(tmp_path / "a", "a"), encrypt=True),
               Target("b", named(tmp_path / "b", "b"), encrypt=True)]
    data = wav_bytes(0.5)
    pipeline = RecordingPipeline(db, source, tmp_path / "spool", targets, audit_interval_s=0,
                                 encryptor=EnvelopeEncryptor(db, keyring))
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
    made = await copies(db, rid)
    (tmp_path / "a" / made["a"].key).unlink()
    backends = {t.name: t.backend for t in targets}

    # Without the master keys the intact copy cannot serve: reported, tried again later.
    report = await audit_copies(db, backends, spool=tmp_path / "spool")
    assert [(f.backend, f.outcome) for f in report.findings] == [("a", DEFERRED)]
    assert (await copies(db, rid))["a"].status == CopyStatus.VERIFIED
    assert list((tmp_path / "spool").iterdir()) == []

    pipeline = RecordingPipeline(db, source, tmp_path / "spool", targets, audit_interval_s=0,
                                 encryptor=EnvelopeEncryptor(db, keyring), keyring=keyring)
    async with pipeline:
        report = await pipeline.audit()
        assert report.requeued == [rid]
        await pipeline.wait_idle()
    fixed = await copies(db, rid)
    assert fixed["a"].status == CopyStatus.VERIFIED
    sealed = tmp_path / "a" / fixed["a"].key
    assert sha(sealed.read_bytes()) == fixed["a"].sha256
    from storage.crypto import decrypt_file
    from storage.keys import load_data_key

    key = await load_data_key(db, keyring, rid)
    decrypt_file(sealed, tmp_path / "plain.wav", key, rid)
    assert (tmp_path / "plain.wav").read_bytes() == data
    assert await status_of(db, rid) == "stored"


async def test_a_silently_altered_sibling_is_not_a_repair_source(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    pipeline = RecordingPipeline(
        lite, source, tmp_path / "spool",
        [Target("a", named(tmp_path / "a", "a")), Target("b", named(tmp_path / "b", "b"))],
        audit_interval_s=0,
    )
    data = wav_bytes(0.4)
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
        made = await copies(lite, rid)
        (tmp_path / "a" / made["a"].key).unlink()
        # Same size, other bytes: stat cannot see it, the download does.
        (tmp_path / "b" / made["b"].key).write_bytes(b"\x00" * len(data))
        report = await pipeline.audit()
    assert report.unrepairable == [rid] and not report.requeued
    assert {(f.backend, f.outcome) for f in report.findings} == {
        ("a", UNREPAIRABLE), ("b", UNREPAIRABLE)
    }
    status = await storage_status(lite)
    assert not status.healthy and len(status.dead) == 2
    assert all(NO_INTACT_COPY in (d.last_error or "") for d in status.dead)
    async with lite() as session:
        row = await session.get(Recording, rid)
    assert row is not None and NO_INTACT_COPY in (row.error or "")


async def test_retry_checks_audit_dead_copies_again_and_repairs_from_a_restored_one(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    """Both copies lost, no cache: dead. Upload retries cannot help a stored recording;
    a recheck after the operator restored one copy from a backup verifies it and
    re-uploads the other from it."""
    source = DirSource(tmp_path / "asterisk")
    targets = [Target("a", named(tmp_path / "a", "a")), Target("b", named(tmp_path / "b", "b"))]
    backends = {t.name: t.backend for t in targets}
    pipeline = RecordingPipeline(lite, source, tmp_path / "spool", targets, audit_interval_s=0)
    data = wav_bytes(0.4)
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
        made = await copies(lite, rid)
        a_file, b_file = tmp_path / "a" / made["a"].key, tmp_path / "b" / made["b"].key
        a_file.unlink()
        os.truncate(b_file, 50)
        assert (await pipeline.audit()).unrepairable == [rid]

        assert await retry_dead(lite) == 0  # not an upload that gave up
        still = await recheck_dead_copies(lite, backends, spool=tmp_path / "spool")
        assert still.unrepairable == [rid] and still.intact == 0 and not still.requeued
        assert {c.status for c in (await copies(lite, rid)).values()} == {"dead"}

        a_file.write_bytes(data)  # put back from the customer's backup
        report = await recheck_dead_copies(lite, backends, spool=tmp_path / "spool")
        assert report.intact == 1 and report.requeued == [rid] and not report.unrepairable
        assert [(f.backend, f.outcome) for f in report.findings] == [("b", REQUEUED)]
        after = await copies(lite, rid)
        assert after["a"].status == "verified" and after["a"].last_error is None
        assert after["b"].status == "pending"
        await pipeline.sweep()
        await pipeline.wait_idle()
    assert b_file.read_bytes() == data
    assert await status_of(lite, rid) == "stored"
    assert {c.status for c in (await copies(lite, rid)).values()} == {"verified"}
    status = await storage_status(lite)
    assert status.healthy and not status.dead
    async with lite() as session:
        row = await session.get(Recording, rid)
    assert row is not None and row.error is None


async def test_a_dead_copy_found_intact_again_clears_the_recordings_error(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    target = Target("a", named(tmp_path / "a", "a"))
    pipeline = RecordingPipeline(lite, source, tmp_path / "spool", [target], audit_interval_s=0)
    data = wav_bytes(0.3)
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
        a_file = tmp_path / "a" / (await copies(lite, rid))["a"].key
        a_file.rename(tmp_path / "moved-away.wav")
        assert (await pipeline.audit()).unrepairable == [rid]
    (tmp_path / "moved-away.wav").rename(a_file)  # the clean-up script undone
    report = await recheck_dead_copies(lite, {"a": target.backend}, spool=tmp_path / "spool",
                                       recording_id=rid)
    assert report.intact == 1 and report.clean
    async with lite() as session:
        row = await session.get(Recording, rid)
    assert row is not None and row.error is None and row.status == "stored"
    assert (await storage_status(lite)).healthy


class DownBackend(LocalBackend):
    async def stat(self, key: str) -> ObjectInfo | None:
        raise BackendUnavailable("backend down: unreachable")


async def test_an_unreachable_backend_is_reported_and_checked_first_next_time(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    down = DownBackend(tmp_path / "d")
    down.name = "d"
    pipeline = RecordingPipeline(lite, source, tmp_path / "spool", [Target("d", down)],
                                 audit_interval_s=0)
    async with pipeline:
        rid = await record(pipeline, source, wav_bytes(0.3))
        await pipeline.wait_idle()
        stamp = (await copies(lite, rid))["d"].verified_at
        report = await pipeline.audit()
    assert report.unreachable == {"d": "backend down: unreachable"} and not report.clean
    assert not report.findings and report.intact == 0
    assert (await copies(lite, rid))["d"].verified_at == stamp


async def test_the_sweeper_audits_every_interval(
    lite: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    clock = [datetime(2026, 5, 1, 8, 0, tzinfo=UTC)]
    pipeline = RecordingPipeline(
        lite, source, tmp_path / "spool",
        [Target("a", named(tmp_path / "a", "a")), Target("b", named(tmp_path / "b", "b"))],
        sweep_interval_s=0.05, audit_interval_s=3600, clock=lambda: clock[0],
    )
    data = wav_bytes(0.3)
    async with pipeline:
        rid = await record(pipeline, source, data)
        await pipeline.wait_idle()
        await asyncio.sleep(0.2)  # the first audit runs at the first sweep
        key = (await copies(lite, rid))["b"].key
        (tmp_path / "b" / key).unlink()
        await asyncio.sleep(0.3)
        assert not (tmp_path / "b" / key).exists()  # not due yet
        clock[0] += timedelta(seconds=3601)
        for _ in range(100):
            if (tmp_path / "b" / key).exists():
                break
            await asyncio.sleep(0.05)
        await pipeline.wait_idle()
    assert (tmp_path / "b" / key).read_bytes() == data
    assert await status_of(lite, rid) == "stored"


CliRun = Callable[..., tuple[int, str]]


def configured_cli(tmp_path: Path, backends: Sequence[str]) -> tuple[CliRun, str]:
    """A config on SQLite with local backends ``backends`` (the first is the embedded
    ``local``), migrated; returns the CLI bound to it and the database URL."""
    db = f"sqlite+aiosqlite:///{tmp_path}/pbx-bridge.db"
    text = (
        f'[database]\nurl = "{db}"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\ntargets = {json.dumps(list(backends))}\n'
        f'[storage.local]\npath = "{tmp_path}/{backends[0]}"\n'
    )
    for name in backends[1:]:
        text += f'[storage.backends.{name}]\ntype = "local"\npath = "{tmp_path}/{name}"\n'
    config = tmp_path / "pbx-bridge.toml"
    config.write_text(text)

    def run(*args: str) -> tuple[int, str]:
        result = cli(config, *args)
        return result.exit_code, result.output

    assert run("db", "upgrade")[0] == 0
    return run, db


def run_service_pipeline(
    db: str, tmp_path: Path, backends: Sequence[str], data: bytes | None = None
) -> str:
    """What the running service does with the CLI's database: store ``data`` as a new
    recording (if given) and finish whatever is queued; returns the new recording's id."""

    async def run() -> str:
        engine = make_engine(db)
        source = DirSource(tmp_path / "asterisk")
        targets = [Target(name, named(tmp_path / name, name)) for name in backends]
        try:
            async with RecordingPipeline(make_session_factory(engine), source,
                                         tmp_path / "spool", targets,
                                         audit_interval_s=0) as pipeline:
                rid = await record(pipeline, source, data) if data is not None else ""
                await pipeline.wait_idle()
        finally:
            await engine.dispose()
        return rid

    return asyncio.run(run())


def test_storage_verify_command(tmp_path: Path) -> None:
    backends = ["local", "archive"]
    cli_run, db = configured_cli(tmp_path, backends)
    data = wav_bytes(0.4)
    rid = run_service_pipeline(db, tmp_path, backends, data)
    code, out = cli_run("storage", "verify")
    assert code == 0 and "2 copies checked, 2 intact, 0 damaged" in out, out

    archived = next((tmp_path / "archive").rglob("*.wav"))
    os.truncate(archived, 100)
    code, out = cli_run("storage", "verify", "--all")
    assert code == 1, out
    assert "1 damaged" in out and "size 100 bytes" in out and REQUEUED in out
    code, out = cli_run("storage", "status", "--json")
    assert json.loads(out)["audit_repairs"] == 1
    assert (tmp_path / "spool" / f"{rid}.wav").read_bytes() == data  # staged for the service

    run_service_pipeline(db, tmp_path, backends)  # the service's next start re-uploads it
    assert archived.read_bytes() == data
    code, out = cli_run("storage", "verify", "--all", "--json")
    assert code == 0 and json.loads(out)["intact"] == 2, out


def test_storage_retry_command_rechecks_audit_dead_copies(tmp_path: Path) -> None:
    cli_run, db = configured_cli(tmp_path, ["local"])
    run_service_pipeline(db, tmp_path, ["local"], wav_bytes(0.4))
    stored = next((tmp_path / "local").rglob("*.wav"))
    stored.rename(tmp_path / "backup.wav")
    code, out = cli_run("storage", "verify")
    assert code == 1 and UNREPAIRABLE in out, out

    code, out = cli_run("storage", "retry")
    assert code == 1, out
    assert "0 dead copies queued again for upload" in out
    assert "1 copies dead-lettered by an audit checked again: 0 intact" in out
    assert "1 still without an intact copy" in out and "missing" in out

    (tmp_path / "backup.wav").rename(stored)
    code, out = cli_run("storage", "retry")
    assert code == 0 and "1 intact, 0 recording(s) queued for re-upload" in out, out
    code, out = cli_run("storage", "status", "--json")
    assert code == 0 and json.loads(out)["healthy"] and not json.loads(out)["dead"], out
