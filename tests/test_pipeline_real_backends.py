"""The whole storage pipeline against real servers: vsftpd, OpenSSH sftp, moto S3.

Recordings are real WAV files handed over by the fake Asterisk (``DirSource``); what the
tests check is what ends up on the servers' disks, read behind the pipeline's back: one
object per recording with its sidecar, ciphertext where encryption is on, a re-upload
after a server was down, truncated or emptied, and one object after a SIGKILL mid-upload.

Run as a script it is the child of the SIGKILL test (see ``_child``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backend_servers import FtpServer, ManagedServer, S3Server, SftpServer
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from storage_fakes import DirSource, db_url, wav_bytes
from typer.testing import CliRunner

from storage.audit import NO_INTACT_COPY
from storage.backends.base import Backend
from storage.backends.ftp import FtpBackend
from storage.backends.local import LocalBackend
from storage.backends.s3 import S3Backend
from storage.backends.settings import FtpBackendSettings
from storage.backends.sftp import SftpBackend
from storage.models import (
    Base,
    CopyStatus,
    DataKey,
    Recording,
    RecordingCopy,
    RecordingKind,
    RecordingStatus,
)
from storage.pipeline import RecordingPipeline
from storage.replication import Target
from storage.status import storage_status

pytest_plugins = ["backend_servers"]
__all__ = ["db_url"]

TESTS = Path(__file__).resolve().parent
THIS = Path(__file__).resolve()
FTP_ENV = "PBXB_TEST_FTP_SETTINGS"


# -- helpers ---------------------------------------------------------------------------


@dataclass
class Remote:
    """A backend on a real server, with the server's own view of its files."""

    kind: str
    backend: Backend
    server: ManagedServer
    disk: Path | None  # the folder on disk behind the backend's base (None for S3)

    def files(self) -> list[str]:
        assert self.disk is not None
        if not self.disk.exists():
            return []
        return sorted(str(p.relative_to(self.disk)) for p in self.disk.rglob("*") if p.is_file())

    async def read(self, key: str, tmp: Path) -> bytes:
        """The object's bytes as the server has them (from its disk where there is one)."""
        if self.disk is not None:
            return (self.disk / key).read_bytes()
        dest = tmp / f"read-{uuid.uuid4().hex}"
        await self.backend.get(key, dest)
        return dest.read_bytes()


def _ftp_remote(server: FtpServer) -> Remote:
    folder = f"t-{uuid.uuid4().hex[:10]}"
    backend = FtpBackend(server.settings(base_dir=f"/{folder}"), "ftp")
    return Remote("ftp", backend, server.server, server.root / folder)


@pytest.fixture
def ftp(ftp_server: FtpServer) -> Iterator[Remote]:
    ftp_server.server.start()  # a test that failed while it was stopped must not leak that
    try:
        yield _ftp_remote(ftp_server)
    finally:
        ftp_server.server.start()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/db.sqlite")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield async_sessionmaker(engine, expire_on_commit=False)
    finally:
        await engine.dispose()


def local(root: Path) -> LocalBackend:
    backend = LocalBackend(root)
    backend.name = "local"
    return backend


async def record(pipeline: RecordingPipeline, source: DirSource, data: bytes) -> Recording:
    row = await pipeline.begin(
        call_id="call-1", kind=RecordingKind.CONVERSATION, legal_basis="consent",
        retention_class="default", retention_days=60,
    )
    source.put(row.asterisk_name, data)
    await pipeline.finished(row.asterisk_name)
    return row


async def load(db: async_sessionmaker[AsyncSession], recording_id: str) -> Recording:
    async with db() as session:
        row = await session.get(Recording, recording_id)
    assert row is not None
    return row


async def copies(
    db: async_sessionmaker[AsyncSession], recording_id: str
) -> dict[str, RecordingCopy]:
    async with db() as session:
        rows = await session.scalars(
            select(RecordingCopy).where(RecordingCopy.recording_id == recording_id)
        )
        return {c.backend: c for c in rows}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- every backend, end to end ---------------------------------------------------------


@pytest.fixture(params=["ftp", "sftp", "s3"])
def remote(
    request: pytest.FixtureRequest, ftp_server: FtpServer, sftp_server: SftpServer,
    s3_server: S3Server,
) -> Remote:
    folder = f"t-{uuid.uuid4().hex[:10]}"
    if request.param == "ftp":
        ftp_server.server.start()
        return _ftp_remote(ftp_server)
    if request.param == "sftp":
        base = sftp_server.root / folder
        return Remote("sftp", SftpBackend(sftp_server.settings(base_dir=str(base)), "sftp"),
                      sftp_server.server, base)
    return Remote("s3", S3Backend(s3_server.settings(prefix=folder), "s3"), s3_server.server,
                  None)


async def test_recordings_end_up_verified_on_every_backend_with_a_sidecar(
    remote: Remote, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    source = DirSource(tmp_path / "asterisk")
    targets = [Target("local", local(tmp_path / "local")),
               Target(remote.kind, remote.backend, sidecar=True)]
    pipeline = RecordingPipeline(db, source, tmp_path / "spool", targets)
    audio = [wav_bytes(0.6), wav_bytes(1.1, samplerate=16000)]
    try:
        async with pipeline:
            rows = [await record(pipeline, source, data) for data in audio]
            await pipeline.wait_idle()
        for row, data in zip(rows, audio, strict=True):
            stored = await load(db, row.id)
            assert stored.status == RecordingStatus.STORED and stored.sha256 == sha(data)
            made = await copies(db, row.id)
            assert {b: c.status for b, c in made.items()} == {
                "local": "verified", remote.kind: "verified"
            }
            copy = made[remote.kind]
            assert await remote.read(copy.key, tmp_path) == data
            assert copy.sidecar_key is not None
            sidecar = json.loads(await remote.read(copy.sidecar_key, tmp_path))
            assert sidecar["recording_id"] == row.id and sidecar["audio_sha256"] == sha(data)
            assert sidecar["stored_sha256"] == copy.sha256 == sha(data)
            assert not source.has(row.asterisk_name)  # Asterisk's copy is cleaned up
        assert list((tmp_path / "spool").iterdir()) == []
        if remote.disk is not None:  # one object and one sidecar each, no temporaries
            assert len(remote.files()) == 4
    finally:
        await remote.backend.close()


# -- a server that is down for a while -------------------------------------------------


async def test_ftp_down_for_a_while_then_every_recording_is_stored_once(
    ftp: Remote, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    clock = [datetime(2026, 11, 24, 9, 0, tzinfo=UTC)]
    source = DirSource(tmp_path / "asterisk")
    targets = [Target("local", local(tmp_path / "local")), Target("ftp", ftp.backend, sidecar=True)]
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", targets, copy_retry_initial_s=100,
        copy_retry_max_s=200, clock=lambda: clock[0],
    )
    audio = [wav_bytes(0.5 + i / 10) for i in range(3)]
    async with pipeline:
        await ftp.server.astop()
        rows = [await record(pipeline, source, data) for data in audio]
        await pipeline.wait_idle()
        for row in rows:
            assert (await load(db, row.id)).status == RecordingStatus.PREPARED
            made = await copies(db, row.id)
            assert made["local"].status == CopyStatus.VERIFIED
            assert made["ftp"].status == CopyStatus.PENDING and made["ftp"].attempts == 1
            assert "unreachable" in (made["ftp"].last_error or "")
            assert source.has(row.asterisk_name)  # nothing is lost while FTP is down
        assert len(list((tmp_path / "spool").iterdir())) == 3

        await ftp.server.astart()
        clock[0] += timedelta(seconds=201)
        assert await pipeline.sweep() == 3
        await pipeline.wait_idle()
    for row, data in zip(rows, audio, strict=True):
        assert (await load(db, row.id)).status == RecordingStatus.STORED
        key = (await copies(db, row.id))["ftp"].key
        assert (ftp.disk / key).read_bytes() == data  # type: ignore[operator]
        assert not source.has(row.asterisk_name)
    names = ftp.files()
    assert len([n for n in names if n.endswith(".wav")]) == 3
    assert len([n for n in names if n.endswith(".wav.json")]) == 3
    assert len(names) == 6  # no temporaries left behind by the failed attempts
    assert list((tmp_path / "spool").iterdir()) == []


# -- audit: damaged behind our back ----------------------------------------------------


async def test_audit_repairs_a_truncated_then_a_deleted_ftp_copy(
    db_url: str, ftp: Remote, tmp_path: Path
) -> None:
    engine = create_async_engine(db_url)
    db = async_sessionmaker(engine, expire_on_commit=False)
    source = DirSource(tmp_path / "asterisk")
    targets = [Target("local", local(tmp_path / "local")), Target("ftp", ftp.backend, sidecar=True)]
    data = wav_bytes(1.0)
    try:
        async with RecordingPipeline(db, source, tmp_path / "spool", targets) as pipeline:
            row = await record(pipeline, source, data)
            await pipeline.wait_idle()
            key = (await copies(db, row.id))["ftp"].key
            on_server = ftp.disk / key  # type: ignore[operator]
            assert on_server.read_bytes() == data

            os.truncate(on_server, len(data) // 3)
            report = await pipeline.audit()
            assert [(f.backend, f.problem) for f in report.findings] == [
                ("ftp", f"size {len(data) // 3} bytes, expected {len(data)}")
            ]
            assert report.requeued == [row.id] and report.intact == 1
            await pipeline.wait_idle()
            assert (await load(db, row.id)).status == RecordingStatus.STORED
            assert sha(on_server.read_bytes()) == (await load(db, row.id)).sha256 == sha(data)

            on_server.unlink()
            report = await pipeline.audit()
            assert [(f.backend, f.problem) for f in report.findings] == [("ftp", "missing")]
            await pipeline.wait_idle()
            assert sha(on_server.read_bytes()) == sha(data)
            made = await copies(db, row.id)
            assert {c.status for c in made.values()} == {"verified"}
            assert (await load(db, row.id)).status == RecordingStatus.STORED
            assert len(ftp.files()) == 2  # the recording and its sidecar, once
            assert list((tmp_path / "spool").iterdir()) == []

            # Both copies gone: reported, never silent.
            on_server.unlink()
            (tmp_path / "local" / made["local"].key).write_bytes(b"")
            report = await pipeline.audit()
            assert report.unrepairable == [row.id] and not report.requeued
        status = await storage_status(db)
        assert not status.healthy
        assert {d.backend for d in status.dead} == {"local", "ftp"}
        assert all(NO_INTACT_COPY in (d.last_error or "") for d in status.dead)
    finally:
        await engine.dispose()


# -- encryption, end to end ------------------------------------------------------------


async def test_encrypted_copy_is_ciphertext_readable_by_us_until_deleted(
    ftp: Remote, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    from pbx_bridge.config import Settings, StorageSettings
    from pbx_bridge.recordings_admin import fetch_recording
    from storage.crypto import decrypt_file, is_encrypted
    from storage.deletion import RecordingDeleter
    from storage.envelope import EnvelopeEncryptor
    from storage.errors import DataKeyDestroyed, DecryptionFailed
    from storage.keyring import Keyring, generate_master_key
    from storage.keys import destroy_data_key, load_data_key

    keys_dir = tmp_path / "keys"
    generate_master_key(keys_dir)
    keyring = Keyring.load(keys_dir, environ={})
    source = DirSource(tmp_path / "asterisk")
    pipeline = RecordingPipeline(
        db, source, tmp_path / "spool", [Target("ftp", ftp.backend, encrypt=True, sidecar=True)],
        encryptor=EnvelopeEncryptor(db, keyring),
    )
    data = wav_bytes(1.5)
    async with pipeline:
        row = await record(pipeline, source, data)
        await pipeline.wait_idle()
    assert (await load(db, row.id)).status == RecordingStatus.STORED
    copy = (await copies(db, row.id))["ftp"]
    on_server = ftp.disk / copy.key  # type: ignore[operator]
    sealed = on_server.read_bytes()
    assert is_encrypted(on_server) and copy.encrypted
    assert b"RIFF" not in sealed and b"WAVE" not in sealed
    for start in range(44, len(data) - 32, len(data) // 7):  # no run of the audio survives
        assert data[start : start + 32] not in sealed
    assert copy.sha256 == sha(sealed) != (await load(db, row.id)).sha256 == sha(data)

    settings = Settings(storage=StorageSettings(keys_dir=keys_dir))
    fetched = await fetch_recording(db, {"ftp": ftp.backend}, row.id, tmp_path / "out.wav",
                                    settings)
    assert fetched.decrypted and (tmp_path / "out.wav").read_bytes() == data

    backup = tmp_path / "old-backup.enc"  # an old backup of the customer's FTP server
    backup.write_bytes(sealed)

    async def destroy(recording_id: str) -> None:
        await destroy_data_key(db, recording_id)

    deleter = RecordingDeleter(db, {"ftp": ftp.backend}, spool_dir=tmp_path / "spool",
                               source=source, destroy_key=destroy)
    outcome = await deleter.request(row.id, reason="erasure")
    assert outcome.done
    assert not on_server.exists() and ftp.files() == []
    async with db() as session:
        key_row = await session.get(DataKey, row.id)
    assert key_row is not None and key_row.destroyed_at is not None
    assert key_row.wrapped_key is None
    with pytest.raises(DataKeyDestroyed):
        await load_data_key(db, keyring, row.id)
    # Nothing we hold opens the backup: no data key is left, and the master key is no
    # data key (nor is a fresh guess).
    for candidate in (keyring._keys[keyring.active_id], os.urandom(32)):
        with pytest.raises(DecryptionFailed):
            decrypt_file(backup, tmp_path / "plain.wav", candidate, row.id)
    assert not (tmp_path / "plain.wav").exists()


# -- storage check against the real servers --------------------------------------------


def _config(tmp_path: Path, ftp: FtpServer, sftp: SftpServer, s3: S3Server) -> Path:
    folder = f"t-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "pbx-bridge.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/db.sqlite"\n'
        f'[storage]\nspool_dir = "{tmp_path}/spool"\n'
        'targets = ["local", "ftp", "sftp", "s3"]\n'
        f'[storage.local]\npath = "{tmp_path}/recordings"\n'
        f'[storage.backends.ftp]\ntype = "ftp"\nhost = "127.0.0.1"\nport = {ftp.port}\n'
        f'username = "{ftp.account.user}"\npassword = "{ftp.account.password}"\n'
        f'base_dir = "/{folder}"\njurisdiction = "TR"\ntimeout_s = 5\n'
        f'[storage.backends.sftp]\ntype = "sftp"\nhost = "127.0.0.1"\nport = {sftp.port}\n'
        f'username = "{sftp.account.user}"\nprivate_key_file = "{sftp.client_key_file}"\n'
        f'known_hosts = "{sftp.known_hosts}"\nbase_dir = "{sftp.root / folder}"\n'
        'jurisdiction = "TR"\ntimeout_s = 5\n'
        f'[storage.backends.s3]\ntype = "s3"\nbucket = "{s3.bucket}"\nprefix = "{folder}"\n'
        f'endpoint_url = "{s3.endpoint_url}"\naccess_key_id = "{s3.access_key_id}"\n'
        f'secret_access_key = "{s3.secret_access_key}"\npath_style = true\n'
        'jurisdiction = "TR"\n'
    )
    return path


def test_storage_check_passes_then_names_the_stopped_ftp_server(
    ftp_server: FtpServer, sftp_server: SftpServer, s3_server: S3Server, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pbx_bridge.cli.main import app

    for name in list(os.environ):
        if name.startswith("PBX_BRIDGE_"):
            monkeypatch.delenv(name)
    ftp_server.server.start()
    config = _config(tmp_path, ftp_server, sftp_server, s3_server)
    result = CliRunner().invoke(app, ["--config", str(config), "storage", "check"])
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.splitlines()]
    for backend in ("local", "ftp", "sftp", "s3"):
        steps = {cols[2]: cols[3] for cols in lines if cols and cols[0] == backend}
        assert {steps.get(s) for s in ("put", "stat", "get", "compare", "delete")} == {"ok"}, (
            backend, result.output,
        )
    assert "FAILED" not in result.output

    ftp_server.server.stop()
    try:
        result = CliRunner().invoke(app, ["--config", str(config), "storage", "check"])
    finally:
        ftp_server.server.start()
    assert result.exit_code == 1, result.output
    failed = [cols for cols in (line.split() for line in result.output.splitlines())
              if "FAILED" in cols]
    assert [(cols[0], cols[2]) for cols in failed] == [("ftp", "put")], result.output
    assert "unreachable" in result.output


# -- SIGKILL right after the upload, before the row says so ----------------------------


async def _child(db: str, work: Path) -> None:
    """Ingest one recording to FTP; the armed failpoint kills us right after the put."""
    engine = create_async_engine(db)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    settings = FtpBackendSettings.model_validate(json.loads(os.environ[FTP_ENV]))
    source = DirSource(work / "asterisk")
    target = Target("ftp", FtpBackend(settings, "ftp"), sidecar=True)
    pipeline = RecordingPipeline(sessions, source, work / "spool", [target],
                                 retry_initial_s=0.05, retry_max_s=0.1)
    async with pipeline:
        row = await record(pipeline, source, wav_bytes(2.0))
        print(f"ROW {row.id} {row.asterisk_name}", flush=True)
        await asyncio.sleep(60)


async def test_sigkill_right_after_the_ftp_put_then_resume_stores_once(
    ftp: Remote, ftp_server: FtpServer, db: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    assert isinstance(ftp.backend, FtpBackend)
    s = ftp.backend.settings
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), str(TESTS.parent)]),
        PBX_BRIDGE_FAILPOINTS="copy-uploaded",
        **{FTP_ENV: json.dumps({
            "type": "ftp", "host": s.host, "port": s.port, "username": s.username,
            "password": s.password.get_secret_value(), "base_dir": s.base_dir,
            "jurisdiction": "TR", "timeout_s": 5,
        })},
    )
    url = f"sqlite+aiosqlite:///{tmp_path}/db.sqlite"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(THIS), url, str(tmp_path),
        stdout=asyncio.subprocess.PIPE, env=env,
    )
    try:
        async with asyncio.timeout(30):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL, out
    _, recording_id, asterisk_name = out.decode().split()

    # At the kill: the file is on the server, the row does not know it yet.
    assert (await load(db, recording_id)).status == RecordingStatus.PREPARED
    assert (await copies(db, recording_id))["ftp"].status == CopyStatus.PENDING
    assert [n for n in ftp.files() if n.endswith(".wav")] != []
    assert not any(n.endswith(".json") for n in ftp.files())

    source = DirSource(tmp_path / "asterisk")
    data = (source.root / f"{asterisk_name}.wav").read_bytes()
    pipeline = RecordingPipeline(db, source, tmp_path / "spool",
                                 [Target("ftp", ftp.backend, sidecar=True)])
    async with pipeline:
        await pipeline.wait_idle()
    row = await load(db, recording_id)
    assert row.status == RecordingStatus.STORED and row.sha256 == sha(data)
    copy = (await copies(db, recording_id))["ftp"]
    assert ftp.files() == sorted([copy.key, f"{copy.key}.json"])
    assert (ftp.disk / copy.key).read_bytes() == data  # type: ignore[operator]
    async with db() as session:
        assert await session.scalar(select(func.count()).select_from(Recording)) == 1
        assert await session.scalar(select(func.count()).select_from(RecordingCopy)) == 1
    assert list((tmp_path / "spool").iterdir()) == []
    assert not source.has(asterisk_name)


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], Path(sys.argv[2])))
