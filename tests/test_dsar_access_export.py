"""Access and export requests on both databases, with real files on the local backend.

Two subjects; the first called from two number formats, with a plain recording, an
encrypted one, an evidence clip and one already deleted (a tombstone); the second has a
recording of their own that must never reach the first one's export.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import logging
import os
import stat
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cli_support import clean_pbx_env  # noqa: F401  (clean_pbx_env: autouse fixture)
from database_fixtures import db_url, migrated_url, pg_database
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbx_bridge.calls.models import Call, Consent, DataSubjectRequest
from pbx_bridge.config import (
    DatabaseSettings,
    LocalStorageSettings,
    PrivacySettings,
    Settings,
    StorageSettings,
)
from pbx_bridge.subjects.access import answer_access
from pbx_bridge.subjects.answer_files import UnsafeReference, checked_reference
from pbx_bridge.subjects.env import RequestEnv
from pbx_bridge.subjects.export import ExportFailed, answer_export, expire_exports
from pbx_bridge.subjects.export_expiry import ExportExpirer
from pbx_bridge.subjects.index import SubjectIndex
from pbx_bridge.subjects.numbers import SubjectKeyer
from pbx_bridge.subjects.register import (
    RequestChannel,
    RequestType,
    complete,
    get_request,
    open_request,
    reject,
    start,
)
from storage import crypto
from storage.database import make_engine, make_session_factory
from storage.keyring import Keyring
from storage.keys import create_data_key
from storage.models import (
    AuditEntry,
    CopyStatus,
    Recording,
    RecordingCopy,
    RecordingStatus,
    Tombstone,
)

__all__ = ["db_url", "migrated_url", "pg_database"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
A_E164 = "+905321234567"
B_E164 = "+905559876543"
HOSTILE = '<script>alert("x")</script> & ]]> \x07 <b>'
HOSTILE_PROMPT = "<img src=x onerror=alert(1)>"


@dataclass
class World:
    env: RequestEnv
    tmp: Path
    audio: dict[str, bytes]
    a_recordings: set[str]
    a_deleted: str
    b_recordings: set[str]
    encrypted: str

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.env.sessions


def _settings(tmp: Path, url: str, **privacy: object) -> Settings:
    return Settings(
        database=DatabaseSettings(url=url),
        storage=StorageSettings(
            spool_dir=tmp / "spool",
            local=LocalStorageSettings(path=tmp / "recordings"),
            keys_dir=tmp / "keys",
        ),
        privacy=PrivacySettings(export_dir=tmp / "exports", export_days=7, **privacy),
    )


def _call(call_id: str, caller: str, index: SubjectIndex, minute: int) -> Call:
    return Call(
        id=call_id,
        linkedid=f"1700000000.{minute}",
        channel_id=f"1700000000.{minute}",
        direction="inbound",
        caller=caller,
        caller_key=index.key_of(caller),
        did="902121112233",
        extension="101",
        announcement="before-connect",
        legal_basis="consent",
        retention_class="default",
        language="tr",
        started_at=T0 + timedelta(minutes=minute),
        answered_at=T0 + timedelta(minutes=minute, seconds=10),
        ended_at=T0 + timedelta(minutes=minute + 2),
        disposition="answered",
    )


def _consent(call: Call, prompt_name: str = "disclosure") -> Consent:
    return Consent(
        call_id=call.id,
        caller=call.caller,
        caller_key=call.caller_key,
        decision="granted",
        digit="1",
        language="tr",
        prompt_name=prompt_name,
        prompt_version="tr-2026-01",
        prompt_sha256="ab" * 32,
        prompt_text_sha256="cd" * 32,
        times_played=1,
        prompt_started_at=call.answered_at,
        decided_at=(call.answered_at or T0) + timedelta(seconds=20),
    )


def _recording(rid: str, call: Call, audio: bytes, *, kind: str = "conversation") -> Recording:
    return Recording(
        id=rid,
        call_id=call.id,
        kind=kind,
        status=RecordingStatus.STORED.value,
        asterisk_name=f"pbxb-{rid}",
        legal_basis="consent",
        retention_class="default",
        retention_days=60,
        retain_until=(call.ended_at or T0) + timedelta(days=60),
        sha256=hashlib.sha256(audio).hexdigest(),
        size_bytes=len(audio),
        duration_s=2.0,
        location=f"local:{rid}.wav",
        started_at=call.started_at,
        stored_at=call.ended_at,
    )


def _write_copy(tmp: Path, rid: str, data: bytes) -> tuple[str, str]:
    key = f"2026/03/01/{rid}.wav"
    path = tmp / "recordings" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return key, path.as_uri()


def _copy(rid: str, key: str, uri: str, data: bytes, *, encrypted: bool = False) -> RecordingCopy:
    return RecordingCopy(
        recording_id=rid,
        backend="local",
        key=key,
        status=CopyStatus.VERIFIED.value,
        encrypted=encrypted,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        location=uri,
        verified_at=T0,
    )


async def _seed(env: RequestEnv, tmp: Path) -> World:
    index = env.index
    call_a1 = _call("a1000000-0000-0000-0000-000000000001", "05321234567", index, 0)
    call_a2 = _call("a2000000-0000-0000-0000-000000000002", A_E164, index, 10)
    call_b = _call("b1000000-0000-0000-0000-000000000003", "0555 987 65 43", index, 20)
    audio = {
        "a1": b"RIFF" + os.urandom(3000) + b"subject-a-first",
        "a1e": b"RIFF" + os.urandom(1000) + b"evidence-a",
        "a2": b"RIFF" + os.urandom(70_000) + b"subject-a-encrypted",  # > one 64 KiB chunk
        "b1": b"RIFF" + os.urandom(2000) + b"subject-b",
    }
    rids = {
        "a1": "aaaaaaaa-0000-0000-0000-000000000001",
        "a1e": "aaaaaaaa-0000-0000-0000-00000000000e",
        "a2": "aaaaaaaa-0000-0000-0000-000000000002",
        "a3": "aaaaaaaa-0000-0000-0000-000000000003",
        "b1": "bbbbbbbb-0000-0000-0000-000000000001",
    }
    keys_dir = tmp / "keys"
    keys_dir.mkdir()
    key_file = keys_dir / "mk-test.key"
    key_file.write_bytes(base64.b64encode(os.urandom(32)) + b"\n")
    key_file.chmod(0o600)

    async with env.sessions() as session:
        session.add_all([call_a1, call_a2, call_b])
        await session.flush()
        session.add_all(
            [_consent(call_a1, prompt_name=HOSTILE_PROMPT), _consent(call_a2), _consent(call_b)]
        )
        session.add_all(
            [
                _recording(rids["a1"], call_a1, audio["a1"]),
                _recording(rids["a1e"], call_a1, audio["a1e"], kind="evidence"),
                _recording(rids["a2"], call_a2, audio["a2"]),
                _recording(rids["b1"], call_b, audio["b1"]),
            ]
        )
        gone = _recording(rids["a3"], call_a2, b"long gone")
        gone.status = RecordingStatus.DELETED.value
        gone.deleted_at = T0 + timedelta(days=1)
        session.add(gone)
        session.add(
            Tombstone(
                recording_id=rids["a3"],
                call_id=call_a2.id,
                kind="conversation",
                legal_basis="consent",
                retention_class="default",
                retain_until=T0 + timedelta(days=1),
                sha256=gone.sha256,
                reason="retention",
                actor="service",
                deleted_where=json.dumps(
                    [
                        {"backend": "local", "key": "2026/secret/path.wav", "deleted_at": "x"},
                        {"backend": "data_key", "key": rids["a3"], "deleted_at": "y"},
                    ]
                ),
                requested_at=T0 + timedelta(days=1),
                deleted_at=T0 + timedelta(days=1),
            )
        )
        await session.commit()

    for name in ("a1", "a1e", "b1"):
        key, uri = _write_copy(tmp, rids[name], audio[name])
        async with env.sessions() as session:
            session.add(_copy(rids[name], key, uri, audio[name]))
            await session.commit()
    # The encrypted one: sealed under its own data key, as the pipeline stores it.
    keyring = Keyring.load(keys_dir, environ={})
    data_key = await create_data_key(env.sessions, keyring, rids["a2"])
    plain = tmp / "a2.plain"
    plain.write_bytes(audio["a2"])
    sealed = tmp / "a2.sealed"
    crypto.encrypt_file(plain, sealed, data_key, context=rids["a2"])
    ciphertext = sealed.read_bytes()
    assert ciphertext != audio["a2"]
    key, uri = _write_copy(tmp, rids["a2"], ciphertext)
    async with env.sessions() as session:
        session.add(_copy(rids["a2"], key, uri, ciphertext, encrypted=True))
        await session.commit()

    return World(
        env=env,
        tmp=tmp,
        audio={rids[k]: v for k, v in audio.items()},
        a_recordings={rids["a1"], rids["a1e"], rids["a2"]},
        a_deleted=rids["a3"],
        b_recordings={rids["b1"]},
        encrypted=rids["a2"],
    )


@pytest.fixture
async def world(migrated_url: str, tmp_path: Path) -> AsyncIterator[World]:
    engine = make_engine(migrated_url)
    try:
        env = RequestEnv(
            settings=_settings(tmp_path, migrated_url),
            sessions=make_session_factory(engine),
            index=SubjectIndex(SubjectKeyer(b"s" * 32), "TR"),
            actor="cli:test",
            now=lambda: NOW,
        )
        yield await _seed(env, tmp_path)
    finally:
        await engine.dispose()


async def _open(world: World, number: str, kind: RequestType) -> str:
    async with world.sessions() as session:
        request = await open_request(
            session,
            world.env.index,
            number=number,
            type=kind,
            channel=RequestChannel.EMAIL,
            actor="cli:test",
            due_days=30,
            now=NOW - timedelta(days=1),
        )
        await session.commit()
        return request.reference


Handler = Callable[[RequestEnv, DataSubjectRequest], object]


async def _run(world: World, reference: str, handler: Handler) -> dict[str, object]:
    """As the dispatcher does: start, answer, complete, one commit."""
    async with world.sessions() as session:
        request = await get_request(session, reference)
        await start(session, request, actor=world.env.actor, now=NOW)
        result = await handler(world.env, request)  # type: ignore[misc]
        assert isinstance(result, dict)
        await complete(session, request, actor=world.env.actor, result=result, now=NOW)
        await session.commit()
        return result


async def _audit(world: World, action: str) -> list[AuditEntry]:
    async with world.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)
                )
            ).all()
        )


def _exists(path: Path) -> bool:
    return path.exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- access --------------------------------------------------------------------------


async def test_access_report_lists_everything_held_as_json_and_html(world: World) -> None:
    earlier = await _open(world, A_E164, RequestType.ACCESS)
    async with world.sessions() as session:
        request = await get_request(session, earlier)
        await reject(session, request, actor="cli:test", reason=HOSTILE, now=NOW)
        await session.commit()
    reference = await _open(world, "0532 123 45 67", RequestType.ACCESS)

    result = await _run(world, reference, answer_access)

    folder = world.tmp / "exports" / reference
    assert result["report_dir"] == str(folder)
    assert {f["name"] for f in result["files"]} == {"report.json", "report.html"}  # type: ignore[attr-defined]
    assert result["counts"] == {
        "calls": 2,
        "consents": 2,
        "recordings": 4,
        "recordings_held": 3,
        "deletions": 1,
        "requests": 2,
    }
    assert _mode(folder) == 0o700 and _mode(folder.parent) == 0o700
    assert _mode(folder / "report.json") == 0o600 and _mode(folder / "report.html") == 0o600

    data = json.loads((folder / "report.json").read_text("utf-8"))
    assert data["subject"] == {"number": A_E164, "number_masked": "0532***4567"}
    assert data["controller"] == world.env.settings.prompts.controller
    assert [c["caller"] for c in data["calls"]] == ["05321234567", A_E164]
    assert {c["call_id"] for c in data["consents"]} == {c["id"] for c in data["calls"]}
    consent = data["consents"][1]
    assert consent["decision"] == "granted" and consent["digit"] == "1"
    assert consent["prompt_version"] == "tr-2026-01" and consent["prompt_sha256"] == "ab" * 32
    recordings = {r["id"]: r for r in data["recordings"]}
    assert set(recordings) == world.a_recordings | {world.a_deleted}
    assert not set(recordings) & world.b_recordings
    a2 = recordings[world.encrypted]
    assert a2["legal_basis"] == "consent" and a2["retain_until"] == "2026-04-30T09:12:00Z"
    assert a2["held"] is True and a2["legal_hold"] is False
    assert a2["copies"] == [
        {
            "backend": "local",
            "jurisdiction": "TR",
            "status": "verified",
            "encrypted": True,
            "verified_at": "2026-03-01T09:00:00Z",
            "deleted_at": None,
        }
    ]
    assert recordings[world.a_deleted]["held"] is False
    (deletion,) = data["deletions"]
    assert deletion["recording_id"] == world.a_deleted and deletion["reason"] == "retention"
    assert [p["name"] for p in deletion["where"]] == ["local", "data_key"]
    assert "secret/path" not in (folder / "report.json").read_text("utf-8")
    assert [r["reference"] for r in data["requests"]] == [earlier, reference]
    assert data["requests"][0]["reject_reason"] == HOSTILE

    page = (folder / "report.html").read_text("utf-8")
    assert "<script>" not in page and "<img src=x" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert A_E164 in page and "Aramalar" in page and "Calls" in page

    # Idempotent: a re-run overwrites with a fresh report and leaves nothing else.
    async with world.sessions() as session:
        request = await get_request(session, reference)
        again = await answer_access(world.env, request)
    assert again["counts"] == result["counts"]
    assert sorted(p.name for p in folder.iterdir()) == ["report.html", "report.json"]


async def test_reports_never_log_the_number(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pbx_bridge")
    caplog.set_level(logging.DEBUG, logger="storage")
    access = await _open(world, A_E164, RequestType.ACCESS)
    export = await _open(world, A_E164, RequestType.EXPORT)
    await _run(world, access, answer_access)
    await _run(world, export, answer_export)
    assert caplog.records
    assert "5321234567" not in caplog.text
    assert "0532***4567" in caplog.text


# -- export --------------------------------------------------------------------------


async def test_export_holds_exactly_the_subjects_recordings(world: World) -> None:
    reference = await _open(world, "905321234567", RequestType.EXPORT)

    result = await _run(world, reference, answer_export)

    dest = world.tmp / "exports" / f"{reference}.zip"
    assert result["export_path"] == str(dest) and dest.is_file()
    assert result["expires_at"] == "2026-03-17T12:00:00Z"
    assert _mode(dest) == 0o600 and _mode(dest.parent) == 0o700
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]  # nothing left over

    with zipfile.ZipFile(dest) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        members = {name: archive.read(name) for name in names}
    manifest = json.loads(members["manifest.json"])
    assert {"report.json", "report.xml", "report.html", "manifest.json"} <= set(names)

    # Exactly subject A's held recordings, as their original (decrypted) bytes.
    by_id = {r["id"]: r for r in manifest["recordings"]}
    assert set(by_id) == world.a_recordings
    audio_members = [n for n in names if n.startswith("recordings/")]
    assert len(audio_members) == 3
    for rid, entry in by_id.items():
        assert members[entry["file"]] == world.audio[rid]
        expected = hashlib.sha256(world.audio[rid]).hexdigest()
        assert entry["sha256"] == entry["stored_sha256"] == expected
        assert entry["matches"] is True
    assert by_id[world.encrypted]["decrypted"] is True
    assert members[by_id[world.encrypted]["file"]].endswith(b"subject-a-encrypted")
    for other in world.b_recordings:
        assert not any(other in n for n in names)
    assert not any(b"subject-b" in data for data in members.values())

    # The manifest lists every other file with its true size and checksum.
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == set(names) - {"manifest.json"}
    for name, entry in listed.items():
        assert entry["size_bytes"] == len(members[name])
        assert entry["sha256"] == hashlib.sha256(members[name]).hexdigest()
    async with world.sessions() as session:
        stored = {
            r.id: r.sha256
            for r in (
                await session.scalars(select(Recording).where(Recording.id.in_(list(by_id))))
            ).all()
        }
    assert {rid: e["sha256"] for rid, e in by_id.items()} == stored

    # The XML (WISECP users' format) is well-formed UTF-8 with the calls.
    root = ET.fromstring(members["report.xml"])
    assert members["report.xml"].startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    assert root.tag == "subject-report" and root.get("version") == "1"
    assert root.findtext("subject/number") == A_E164
    calls = root.find("calls")
    assert calls is not None and calls.get("count") == "2"
    assert [c.findtext("caller") for c in calls.findall("call")] == ["05321234567", A_E164]
    assert {r.findtext("id") for r in root.iterfind("recordings/recording")} == (
        world.a_recordings | {world.a_deleted}
    )
    assert root.findtext("consents/consent/prompt-name") == HOSTILE_PROMPT
    assert root.findtext("summary/recordings-held") == "3"
    assert json.loads(members["report.json"])["summary"]["recordings_held"] == 3
    assert b"<img src=x" not in members["report.html"]

    async with world.sessions() as session:
        request = await get_request(session, reference)
        assert request.export_path == str(dest)
        assert request.export_expires_at == NOW + timedelta(days=7)
        assert request.status == "done"
    exported = await _audit(world, "recording.exported")
    assert {e.target for e in exported} == {f"recording:{rid}" for rid in world.a_recordings}
    assert all(json.loads(e.details) == {"request": reference} for e in exported)
    assert all(e.actor == "cli:test" for e in exported)


async def test_export_rerun_replaces_the_zip(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    async with world.sessions() as session:
        request = await get_request(session, reference)
        await start(session, request, actor="cli:test", now=NOW)
        first = await answer_export(world.env, request)
        second = await answer_export(world.env, request)
        await session.commit()
    assert first["export_path"] == second["export_path"]
    dest = Path(str(second["export_path"]))
    assert sorted(p.name for p in dest.parent.iterdir()) == [dest.name]
    with zipfile.ZipFile(dest) as archive:
        assert archive.testzip() is None


async def test_failing_fetch_leaves_no_zip_and_the_request_in_progress(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    # The backend lost one copy: the recording cannot be read now.
    (world.tmp / "recordings" / f"2026/03/01/{world.encrypted}.wav").unlink()
    async with world.sessions() as session:
        request = await get_request(session, reference)
        await start(session, request, actor="cli:test", now=NOW)
        await session.commit()
        with pytest.raises(ExportFailed, match=f"recording {world.encrypted}.*cannot be read now"):
            await answer_export(world.env, request)
        await session.commit()
    exports = world.tmp / "exports"
    assert list(exports.iterdir()) == []  # no ZIP, no .part, no staging folder
    async with world.sessions() as session:
        request = await get_request(session, reference)
        assert request.status == "in-progress" and request.export_path is None
    assert await _audit(world, "recording.exported") == []


async def test_a_recording_not_yet_stored_fails_the_export(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    async with world.sessions() as session:
        row = await session.get(Recording, world.encrypted)
        assert row is not None
        row.status = RecordingStatus.SPOOLED.value
        await session.execute(
            RecordingCopy.__table__.delete().where(  # type: ignore[attr-defined]
                RecordingCopy.recording_id == world.encrypted
            )
        )
        await session.commit()
    async with world.sessions() as session:
        request = await get_request(session, reference)
        with pytest.raises(ExportFailed, match="spooled"):
            await answer_export(world.env, request)
    assert list((world.tmp / "exports").iterdir()) == []


async def test_expired_exports_are_deleted(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    result = await _run(world, reference, answer_export)
    dest = Path(str(result["export_path"]))

    assert await expire_exports(world.sessions, now=NOW + timedelta(days=6)) == []
    assert _exists(dest)

    expired = await expire_exports(world.sessions, now=NOW + timedelta(days=7, seconds=1))
    assert expired == [reference]
    assert not _exists(dest)
    async with world.sessions() as session:
        request = await get_request(session, reference)
        assert request.export_path is None
        assert request.export_expires_at == NOW + timedelta(days=7)
    (entry,) = await _audit(world, "dsar.export-expired")
    assert entry.target == f"dsar:{request.id}"
    assert json.loads(entry.details)["reference"] == reference
    assert json.loads(entry.details)["file_deleted"] is True

    assert await expire_exports(world.sessions, now=NOW + timedelta(days=30)) == []


async def test_access_reports_expire_like_exports(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.ACCESS)
    result = await _run(world, reference, answer_access)
    folder = Path(str(result["report_dir"]))
    assert result["expires_at"] == "2026-03-17T12:00:00Z"

    assert await expire_exports(world.sessions, now=NOW + timedelta(days=6)) == []
    assert _exists(folder / "report.json")

    assert await expire_exports(world.sessions, now=NOW + timedelta(days=8)) == [reference]
    assert not _exists(folder)
    assert _exists(world.tmp / "exports")  # only the request's own folder went


async def test_the_service_expirer_runs_at_start(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    result = await _run(world, reference, answer_export)
    dest = Path(str(result["export_path"]))
    later = NOW + timedelta(days=8)
    async with ExportExpirer(world.sessions, now=lambda: later):
        for _ in range(100):
            if not _exists(dest):
                break
            await asyncio.sleep(0.05)
    assert not _exists(dest)


async def test_detached_request_gets_its_own_session(world: World) -> None:
    reference = await _open(world, A_E164, RequestType.EXPORT)
    async with world.sessions() as session:
        request = await get_request(session, reference)
    result = await answer_export(world.env, request)
    assert request.export_path == result["export_path"]
    assert len(await _audit(world, "recording.exported")) == 3


def test_references_that_could_escape_the_export_folder_are_refused() -> None:
    assert checked_reference("DSAR-2026-0001") == "DSAR-2026-0001"
    for bad in ("../x", "a/b", "", ".hidden", "a..b", "x\x00"):
        with pytest.raises(UnsafeReference):
            checked_reference(bad)


async def test_export_reports_its_progress_recording_by_recording(world: World) -> None:
    """``dsar run`` of a large export shows how many recordings are in the ZIP so far."""
    seen: list[tuple[str, int | None]] = []

    class Seen:
        def start(self, total: int | None) -> None:
            seen.append(("start", total))

        def advance(self, n: int = 1) -> None:
            seen.append(("advance", n))

    reference = await _open(world, A_E164, RequestType.EXPORT)
    async with world.sessions() as session:
        request = await get_request(session, reference)
        await start(session, request, actor="cli:test", now=NOW)
        await answer_export(dataclasses.replace(world.env, progress=Seen()), request)
    assert seen == [("start", 3), ("advance", 1), ("advance", 1), ("advance", 1)]
